"""The layer-by-layer diagnosis of one candidate: correctness before corrections.

Layers are judged in the order DESIGN.md §1 gives, and the first failing one is where to start:

1. workload: a different model, data, seed, batch, length, learning rate or step count makes
   the comparison not like-for-like, and that is said before anything else;
2. semantic: a differing semantic setting (``logprobs_mode``, temperature, ...) or a mean
   offset in the parity metrics;
3. inference-path: a differing engine setting (prefix caching, async scheduling, weight-update
   mode, lm_head dtype, ...), an absolute log-prob difference larger than the reference's
   (numerics) or one that grows with weight-version lag (update path). A different engine
   name or version is the point of a backend comparison, so on its own it fails nothing:
   parity metrics decide, and without them the layer is unknown;
4. objective: judged only when semantic and inference-path pass; then diverging training
   curves at backend parity call for an objective correction (truncated importance sampling,
   a lag limit, a different ε). A differing objective setting is reported as a failure at any
   time, but the advice waits for the lower layers.

Divergence steps of the compared metrics are evidence of every failing layer and of the
objective layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backend.compare.configdiff import ConfigDifference
from backend.compare.divergence import Divergence
from backend.compare.parity import ParityFindings
from backend.compare.registry import LAYERS, UNCLASSIFIED, Layer, normalise_key

__all__ = ["Diagnosis", "LayerVerdict", "Verdict", "diagnose"]

Verdict = Literal["pass", "fail", "unknown"]

_ENGINE_IDENTITY = {
    ("engine", "name"),
    ("engine", "version"),
    ("engine_name",),
    ("engine_version",),
    ("vllm_version",),
}


@dataclass(frozen=True)
class LayerVerdict:
    """One layer's verdict, the evidence behind it and one plain sentence for people."""

    layer: Layer
    verdict: Verdict
    evidence: dict[str, Any]
    sentence: str


@dataclass(frozen=True)
class Diagnosis:
    """The ordered verdicts for one candidate and the layer to start from (None: all clear)."""

    verdicts: tuple[LayerVerdict, ...]
    starting_layer: Layer | None
    like_for_like: bool | None
    unclassified_keys: list[str] = field(default_factory=list)


def diagnose(
    differences: Sequence[ConfigDifference],
    parity: ParityFindings,
    divergences: Mapping[str, Divergence],
    *,
    has_config: bool = True,
    logprobs_mode_recorded: bool = False,
) -> Diagnosis:
    """Judge each layer for one candidate against its reference.

    ``differences`` is the candidate's config diff, ``parity`` what its parity metrics say,
    ``divergences`` the first divergence per compared metric. ``has_config`` is False when the
    reference or the candidate recorded no configuration at all (the workload then cannot be
    judged); ``logprobs_mode_recorded`` tells whether both runs record an effective
    ``logprobs_mode``, which lets the semantic layer pass without parity metrics.
    """
    by_layer: dict[str, list[ConfigDifference]] = {layer: [] for layer in (*LAYERS, UNCLASSIFIED)}
    tolerated: list[ConfigDifference] = []
    for difference in differences:
        if difference.varies_among_references:
            tolerated.append(difference)
        else:
            by_layer[difference.layer].append(difference)
    diverged = {
        metric: {
            "first_divergence_step": d.first_divergence_step,
            "effect_size": d.effect_size,
            "direction": d.direction,
        }
        for metric, d in divergences.items()
        if d.first_divergence_step is not None
    }

    workload = _workload(by_layer["workload"], tolerated, has_config)
    semantic = _semantic(
        by_layer["semantic"], parity, by_layer["inference-path"], logprobs_mode_recorded
    )
    inference = _inference_path(by_layer["inference-path"], parity)
    failing_below = [v.layer for v in (semantic, inference) if v.verdict != "pass"]
    objective = _objective(by_layer["objective"], diverged, divergences, failing_below)
    verdicts = (workload, semantic, inference, objective)
    for verdict in verdicts[1:]:
        if verdict.verdict == "fail" and diverged:
            verdict.evidence["divergence"] = diverged
    starting = next((v.layer for v in verdicts if v.verdict == "fail"), None)
    return Diagnosis(
        verdicts=verdicts,
        starting_layer=starting,
        like_for_like=None if workload.verdict == "unknown" else workload.verdict == "pass",
        unclassified_keys=[d.key for d in by_layer[UNCLASSIFIED]],
    )


def _workload(
    differing: list[ConfigDifference], tolerated: list[ConfigDifference], has_config: bool
) -> LayerVerdict:
    evidence: dict[str, Any] = {"differing_keys": _keys(differing)}
    if tolerated:
        evidence["varies_among_references"] = _keys(tolerated)
    if differing:
        return LayerVerdict(
            "workload",
            "fail",
            evidence,
            f"Not like-for-like: the workload differs ({_describe(differing)}); compare runs "
            "with the same workload before reading the other layers.",
        )
    if not has_config:
        return LayerVerdict(
            "workload",
            "unknown",
            evidence,
            "A run recorded no configuration, so whether the workload matches is unknown.",
        )
    return LayerVerdict(
        "workload",
        "pass",
        evidence,
        "Same workload: no model, data, seed, batch, length, learning-rate or step-count "
        "setting differs.",
    )


def _semantic(
    differing: list[ConfigDifference],
    parity: ParityFindings,
    inference_differing: list[ConfigDifference],
    logprobs_mode_recorded: bool,
) -> LayerVerdict:
    evidence: dict[str, Any] = {
        "differing_keys": _keys(differing),
        "parity": _parity_evidence(parity, "mean_offset"),
    }
    if differing:
        sentence = (
            f"Semantic mismatch: {_describe(differing)}; the candidate's logprobs do not mean "
            "what the trainer assumes"
        )
        sentence += f", and {_offset_phrase(parity)}." if parity.mean_offset else "."
        return LayerVerdict("semantic", "fail", evidence, sentence)
    if parity.mean_offset:
        return LayerVerdict(
            "semantic",
            "fail",
            evidence,
            f"Semantic mismatch: {_offset_phrase(parity)} although no semantic setting "
            "differs; check the engine's effective logprobs_mode (raw vs processed).",
        )
    if parity.mean_offset is False:
        return LayerVerdict(
            "semantic",
            "pass",
            evidence,
            "Logprobs mean the same thing: no semantic setting differs and rollout − trainer "
            "logprobs show no mean offset.",
        )
    same_engine = not any(_is_engine_identity(d) for d in inference_differing)
    if logprobs_mode_recorded or same_engine:
        basis = (
            "both runs record the same logprobs_mode"
            if logprobs_mode_recorded
            else "the engine and every semantic setting are the same"
        )
        return LayerVerdict(
            "semantic",
            "pass",
            evidence,
            f"No semantic setting differs and {basis} (no parity metrics to confirm it).",
        )
    return LayerVerdict(
        "semantic",
        "unknown",
        evidence,
        "The engines differ and neither parity metrics nor a recorded logprobs_mode show "
        "what their logprobs mean; a raw-vs-processed mismatch cannot be ruled out.",
    )


def _inference_path(differing: list[ConfigDifference], parity: ParityFindings) -> LayerVerdict:
    engine_identity = [d for d in differing if _is_engine_identity(d)]
    settings = [d for d in differing if not _is_engine_identity(d)]
    evidence: dict[str, Any] = {
        "differing_keys": _keys(settings),
        "engine": _keys(engine_identity),
        "parity": _parity_evidence(parity, "numerics_excess", "update_path"),
    }
    causes = []
    if settings:
        causes.append(f"{_describe(settings)} differ")
    if parity.numerics_excess:
        causes.append(
            "the absolute rollout − trainer logprob difference exceeds the reference's with no "
            "mean offset (numerics: lm_head dtype, kernels)"
        )
    if parity.update_path:
        causes.append(
            "the candidate generates on staler weights or its logprob difference grows with "
            "weight-version lag (update path: prefix cache across updates, async scheduling, "
            "non-blocking weight update)"
        )
    if causes:
        return LayerVerdict(
            "inference-path",
            "fail",
            evidence,
            "Inference-path mismatch: " + "; ".join(causes) + ".",
        )
    engines = (
        f"the engines differ by design ({_describe(engine_identity)}) but "
        if engine_identity
        else ""
    )
    if parity.numerics_excess is False and parity.update_path is not True:
        return LayerVerdict(
            "inference-path",
            "pass",
            evidence,
            f"Same computation: {engines}no inference-path setting differs and the parity "
            "metrics are as close as the reference's.",
        )
    if engine_identity:
        return LayerVerdict(
            "inference-path",
            "unknown",
            evidence,
            f"The engines differ ({_describe(engine_identity)}) and there are no parity "
            "metrics to compare with the reference's, so the paths cannot be confirmed equal.",
        )
    return LayerVerdict(
        "inference-path",
        "pass",
        evidence,
        "Same engine and no inference-path setting differs"
        + ("." if parity.available else " (no parity metrics to confirm it)."),
    )


def _objective(
    differing: list[ConfigDifference],
    diverged: dict[str, dict[str, Any]],
    divergences: Mapping[str, Divergence],
    failing_below: list[str],
) -> LayerVerdict:
    evidence: dict[str, Any] = {"differing_keys": _keys(differing), "divergence": diverged}
    lower_pass = not failing_below
    if differing:
        sentence = f"The objective itself differs: {_describe(differing)}."
        if lower_pass and diverged:
            sentence += " With the backend at parity, align the objective settings first."
        return LayerVerdict("objective", "fail", evidence, sentence)
    if not lower_pass:
        return LayerVerdict(
            "objective",
            "unknown",
            evidence,
            f"Not assessed: correctness before corrections; settle the {failing_below[0]} "
            "layer first, then revisit objective corrections.",
        )
    if diverged:
        first_metric, first = min(
            diverged.items(), key=lambda item: item[1]["first_divergence_step"]
        )
        return LayerVerdict(
            "objective",
            "fail",
            evidence,
            f"Semantic and inference-path pass but {first_metric} leaves the reference band "
            f"at step {first['first_divergence_step']}: correct the objective, e.g. truncated "
            "importance sampling (cap the rollout/trainer ratio), a lag limit, or a different ε.",
        )
    if not divergences:
        return LayerVerdict(
            "objective",
            "unknown",
            evidence,
            "No training curve was compared, so the objective cannot be judged.",
        )
    return LayerVerdict(
        "objective",
        "pass",
        evidence,
        f"At parity: {', '.join(divergences)} stay within the reference band; no objective "
        "correction is needed.",
    )


def _is_engine_identity(difference: ConfigDifference) -> bool:
    segments = normalise_key(difference.key)
    return any(segments[-len(identity) :] == identity for identity in _ENGINE_IDENTITY)


def _keys(differences: Sequence[ConfigDifference]) -> list[dict[str, Any]]:
    return [
        {
            "key": d.key,
            "reference_value": d.reference_value,
            "candidate_value": d.candidate_value,
        }
        for d in differences
    ]


def _describe(differences: Sequence[ConfigDifference], limit: int = 4) -> str:
    parts = [
        f"{d.key} {_shown(d.reference_value)} → {_shown(d.candidate_value)}"
        for d in differences[:limit]
    ]
    if len(differences) > limit:
        parts.append(f"{len(differences) - limit} more")
    return ", ".join(parts)


def _shown(value: Any) -> str:
    return "unset" if value is None else str(value)


def _offset_phrase(parity: ParityFindings) -> str:
    mine = (parity.candidate or {}).get("logprob_diff_mean")
    theirs = (parity.reference or {}).get("logprob_diff_mean")
    phrase = f"rollout − trainer logprobs carry a mean offset of {mine:.3g}"
    if theirs is not None:
        phrase += f" (reference {theirs:.3g})"
    return phrase


def _parity_evidence(parity: ParityFindings, *findings: str) -> dict[str, Any]:
    evidence: dict[str, Any] = {name: getattr(parity, name) for name in findings}
    evidence["candidate"] = parity.candidate
    evidence["reference"] = parity.reference
    if parity.notes:
        evidence["notes"] = parity.notes
    return evidence

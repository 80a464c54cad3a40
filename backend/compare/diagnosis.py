"""The layer-by-layer diagnosis of one candidate: correctness before corrections.

Layers are judged in the order docs/ARCHITECTURE.md §1 gives, and the first failing one is where to start:

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

Each verdict carries ``facts`` (``backend.compare.facts``): the findings that decided it, in
plain words with units and a definition of every quantity, and nothing that contradicts it; and
``evidence``, the same material as plain data for programs (the differing keys, the parity
summaries, the divergences). Divergences are facts of the objective layer, the only layer they
decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backend.compare.configdiff import ConfigDifference
from backend.compare.divergence import Divergence, divergence_fact
from backend.compare.facts import Fact, sig3
from backend.compare.parity import EXCESS_RATIO, ParityFindings
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
    facts: tuple[Fact, ...] = ()


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
    judged, and neither can the engines be known to be the same); ``logprobs_mode_recorded``
    tells whether both runs record an effective ``logprobs_mode``, which lets the semantic layer
    pass without parity metrics.
    """
    by_layer: dict[str, list[ConfigDifference]] = {layer: [] for layer in (*LAYERS, UNCLASSIFIED)}
    tolerated: list[ConfigDifference] = []
    for difference in differences:
        if difference.varies_among_references or difference.expected:
            tolerated.append(difference)
        else:
            by_layer[difference.layer].append(difference)
    diverged = {
        metric: d for metric, d in divergences.items() if d.first_divergence_step is not None
    }

    workload = _workload(by_layer["workload"], tolerated, has_config)
    semantic = _semantic(
        by_layer["semantic"], parity, by_layer["inference-path"], logprobs_mode_recorded, has_config
    )
    inference = _inference_path(by_layer["inference-path"], parity, has_config)
    failing_below = [v.layer for v in (semantic, inference) if v.verdict != "pass"]
    objective = _objective(by_layer["objective"], diverged, divergences, failing_below)
    verdicts = (workload, semantic, inference, objective)
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
    expected = [_expected_fact(d) for d in tolerated]
    if differing:
        return LayerVerdict(
            "workload",
            "fail",
            evidence,
            f"Not like-for-like: the workload differs ({_describe(differing)}); compare runs "
            "with the same workload before reading the other layers.",
            tuple(_key_fact(d) for d in differing),
        )
    if not has_config:
        return LayerVerdict(
            "workload",
            "unknown",
            evidence,
            "A run recorded no configuration, so whether the workload matches is unknown.",
            (Fact("A run recorded no configuration: there is nothing to compare the workload by."),),
        )
    return LayerVerdict(
        "workload",
        "pass",
        evidence,
        "Same workload: no model, data, seed, batch, length, learning-rate or step-count "
        "setting differs.",
        (Fact("No workload setting differs."), *expected),
    )


def _semantic(
    differing: list[ConfigDifference],
    parity: ParityFindings,
    inference_differing: list[ConfigDifference],
    logprobs_mode_recorded: bool,
    has_config: bool = True,
) -> LayerVerdict:
    evidence: dict[str, Any] = {"differing_keys": _keys(differing), "parity": _parity(parity)}
    keys = tuple(_key_fact(d) for d in differing)
    offset = _offset_facts(parity)
    no_setting = (
        "no semantic setting differs"
        if has_config
        else "no configuration was recorded, so the parity metrics alone decide"
    )
    if differing:
        sentence = (
            f"Semantic mismatch: {_describe(differing)}; the candidate's logprobs do not mean "
            "what the trainer assumes"
        )
        if parity.mean_offset:
            sentence += f", and {_offset_phrase(parity)}."
        elif parity.mean_offset is False:
            sentence += (
                ", although the parity metrics show no mean offset beyond the reference's: "
                "the differing setting alone decides."
            )
        else:
            sentence += "."
        return LayerVerdict("semantic", "fail", evidence, sentence, keys + offset)
    if parity.mean_offset:
        return LayerVerdict(
            "semantic",
            "fail",
            evidence,
            f"Semantic mismatch: {_offset_phrase(parity)}"
            + (" although no semantic setting differs" if has_config else "")
            + "; check the engine's effective logprobs_mode (raw vs processed).",
            offset,
        )
    if parity.mean_offset is False:
        return LayerVerdict(
            "semantic",
            "pass",
            evidence,
            f"Logprobs mean the same thing: {no_setting}, and rollout − trainer logprobs show "
            "no mean offset beyond the reference's.",
            (Fact(no_setting[0].upper() + no_setting[1:] + "."), *offset),
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
            (Fact(f"No semantic setting differs and {basis}."), *_missing_parity(parity)),
        )
    return LayerVerdict(
        "semantic",
        "unknown",
        evidence,
        "The engines differ and neither parity metrics nor a recorded logprobs_mode show "
        "what their logprobs mean; a raw-vs-processed mismatch cannot be ruled out.",
        (
            *(_key_fact(d) for d in inference_differing if _is_engine_identity(d)),
            *_missing_parity(parity),
        ),
    )


def _inference_path(
    differing: list[ConfigDifference], parity: ParityFindings, has_config: bool
) -> LayerVerdict:
    engine_identity = [d for d in differing if _is_engine_identity(d)]
    settings = [d for d in differing if not _is_engine_identity(d)]
    evidence: dict[str, Any] = {
        "differing_keys": _keys(settings),
        "engine": _keys(engine_identity),
        "parity": _parity(parity),
    }
    causes = []
    facts: list[Fact] = [_key_fact(d) for d in settings]
    if settings:
        causes.append(f"{_describe(settings)} differ")
    if parity.numerics_excess:
        causes.append(
            "the absolute rollout − trainer logprob difference exceeds the reference's from the "
            "first step, with no mean offset (numerics: lm_head dtype, kernels)"
        )
        facts.extend(_numerics_facts(parity))
    if parity.update_path:
        causes.append(
            "the logprob difference comes with weight updates: "
            + _update_phrase(parity)
            + " (update path: prefix cache across updates, async scheduling, non-blocking "
            "weight update)"
        )
        facts.extend(_update_facts(parity))
    if causes:
        return LayerVerdict(
            "inference-path",
            "fail",
            evidence,
            "Inference-path mismatch: " + "; ".join(causes) + ".",
            tuple(facts),
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
            (*(_key_fact(d) for d in engine_identity), *_numerics_facts(parity),
             *_update_facts(parity)),
        )  # fmt: skip
    if engine_identity or not has_config:
        reason = (
            f"The engines differ ({_describe(engine_identity)})"
            if engine_identity
            else "A run recorded no configuration"
        )
        if parity.mean_offset:
            return LayerVerdict(
                "inference-path",
                "unknown",
                evidence,
                f"{reason}, and the semantic layer's mean offset dominates the logprob "
                "difference, so the paths cannot be judged from the parity metrics; fix the "
                "semantic layer, then compare again.",
                (*(_key_fact(d) for d in engine_identity), *_offset_facts(parity)),
            )
        return LayerVerdict(
            "inference-path",
            "unknown",
            evidence,
            f"{reason} and there are no parity metrics to compare with the reference's, so the "
            "paths cannot be confirmed equal.",
            (*(_key_fact(d) for d in engine_identity), *_missing_parity(parity)),
        )
    return LayerVerdict(
        "inference-path",
        "pass",
        evidence,
        "Same engine and no inference-path setting differs"
        + (
            "."
            if parity.available and not parity.mean_offset
            else " (no parity metrics to confirm it)."
            if not parity.available
            else " (the parity metrics cannot confirm it while a mean offset dominates them)."
        ),
        (Fact("The engine and every inference-path setting are the same."),
         *_missing_parity(parity)),
    )  # fmt: skip


def _objective(
    differing: list[ConfigDifference],
    diverged: dict[str, Divergence],
    divergences: Mapping[str, Divergence],
    failing_below: list[str],
) -> LayerVerdict:
    evidence: dict[str, Any] = {
        "differing_keys": _keys(differing),
        "divergence": {
            metric: {
                "first_divergence_step": d.first_divergence_step,
                "effect_size": d.effect_size,
                "direction": d.direction,
                "stretch_outside": d.stretch_outside,
                "stretch_steps": d.stretch_steps,
                "last_step": d.last_step,
            }
            for metric, d in diverged.items()
        },
    }
    curves = tuple(divergence_fact(metric, d) for metric, d in diverged.items())
    lower_pass = not failing_below
    if differing:
        sentence = f"The objective itself differs: {_describe(differing)}."
        if lower_pass and diverged:
            sentence += " With the backend at parity, align the objective settings first."
        return LayerVerdict(
            "objective", "fail", evidence, sentence, tuple(_key_fact(d) for d in differing)
        )
    if not lower_pass:
        return LayerVerdict(
            "objective",
            "unknown",
            evidence,
            f"Not assessed: correctness before corrections; settle the {failing_below[0]} "
            "layer first, then revisit objective corrections.",
            (Fact(f"The {failing_below[0]} layer does not pass yet."),),
        )
    if diverged:
        first_metric, first = min(diverged.items(), key=lambda item: item[1].first_divergence_step)
        return LayerVerdict(
            "objective",
            "fail",
            evidence,
            f"Semantic and inference-path pass but {first_metric} leaves the reference band "
            f"at step {first.first_divergence_step}: correct the objective, e.g. truncated "
            "importance sampling (cap the rollout/trainer ratio), a lag limit, or a different ε.",
            curves,
        )
    if not divergences:
        return LayerVerdict(
            "objective",
            "unknown",
            evidence,
            "No training curve was compared, so the objective cannot be judged.",
            (Fact("No training curve was compared."),),
        )
    return LayerVerdict(
        "objective",
        "pass",
        evidence,
        f"At parity: {', '.join(divergences)} stay within the reference band; no objective "
        "correction is needed.",
        (Fact(f"{', '.join(divergences)} leave the band no more often than the reference does."),),
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
    # Settings are shown as recorded; only measured quantities are rounded.
    return "unset" if value is None else str(value)


_LAYER_MEANING = {
    "workload": "a workload setting: a different value makes the runs not like-for-like",
    "semantic": "a semantic setting: it changes what the engine's logprobs mean",
    "inference-path": "an inference-path setting: same meaning, different computation",
    "objective": "an objective setting: it changes the RL loss itself",
}


def _key_fact(difference: ConfigDifference) -> Fact:
    by_design = " (engines differ by design; the parity metrics judge them)"
    return Fact(
        fact=f"{difference.key}: {_shown(difference.reference_value)} in the reference, "
        f"{_shown(difference.candidate_value)} in the candidate"
        + (by_design if _is_engine_identity(difference) else "")
        + ".",
        quantity=difference.key,
        definition=f"{difference.key} is {_LAYER_MEANING.get(difference.layer, 'a setting')}.",
    )


def _expected_fact(difference: ConfigDifference) -> Fact:
    references = ", ".join(
        _shown(v) for v in difference.replica_values or (difference.reference_value,)
    )
    return Fact(
        fact=f"{difference.key} differs among the reference's replicas by design (reference: "
        f"{references}; candidate: {_shown(difference.candidate_value)}): the band spans that "
        "variation, so it is not a workload difference.",
        quantity=difference.key,
        definition="A setting that differs from run to run of the same workload by design, such "
        "as each leg's own sampling seed.",
    )


OFFSET_DEFINITION = (
    "Mean rollout − trainer logprob difference: per step, the mean over tokens sampled with the "
    "trainer's current weights of the engine's logprob minus the trainer's, averaged over the "
    "steps; in nats. A mismatch of meaning (raw vs processed logprobs) shifts it."
)
SIGNIFICANCE_DEFINITION = (
    "How far the candidate's mean offset lies beyond the reference's (difference of their "
    "absolute values) in standard errors of the two step-means combined; 3 or more is "
    "significant."
)
ABS_DEFINITION = (
    "Mean absolute rollout − trainer logprob difference: per step, the mean over tokens sampled "
    "with the trainer's current weights of |engine logprob − trainer logprob|, averaged over the "
    "steps where the engine ran on the trainer's current weights (lag 0); in nats."
)
FIRST_DEFINITION = (
    "The mean absolute rollout − trainer logprob difference at the first step compared, before "
    "any weight update when the view starts at the run's first step; in nats."
)
LAG_DEFINITION = (
    "Weight-version lag: per step, the token mean of trainer weight version − engine weight "
    "version, averaged over the steps; in versions."
)
MISSING_DEFINITION = (
    "Parity metrics: parity/logprob_diff_mean, parity/logprob_abs_diff_mean, "
    "parity/logprob_abs_diff_max and parity/weight_version_lag, logged per step by workers and "
    "by trainers that compute them."
)


def _candidate_reference(parity: ParityFindings, field_name: str) -> tuple[Any, Any]:
    mine = getattr(parity.candidate_summary, field_name, None)
    theirs = getattr(parity.reference_summary, field_name, None)
    return mine, theirs


def _offset_facts(parity: ParityFindings) -> tuple[Fact, ...]:
    mine, theirs = _candidate_reference(parity, "diff_mean")
    if mine is None:
        return _missing_parity(parity)
    reference = f" (reference: {sig3(theirs.value)} nats)" if theirs is not None else ""
    facts = [
        Fact(
            f"Mean rollout − trainer logprob difference: {sig3(mine.value)} nats{reference}.",
            "mean rollout − trainer logprob difference",
            mine.value,
            "nats",
            OFFSET_DEFINITION,
        )
    ]
    if parity.offset_z is not None:
        significant = parity.mean_offset is True
        facts.append(
            Fact(
                f"That offset lies {sig3(parity.offset_z)} standard errors beyond the "
                f"reference's: {'significant' if significant else 'not significant'} "
                "(3 or more is significant).",
                "offset beyond the reference's",
                parity.offset_z,
                "standard errors",
                SIGNIFICANCE_DEFINITION,
            )
        )
    return tuple(facts)


def _numerics_facts(parity: ParityFindings) -> tuple[Fact, ...]:
    mine_summary, theirs_summary = parity.candidate_summary, parity.reference_summary
    if mine_summary is None or theirs_summary is None:
        return ()
    mine = mine_summary.abs_diff_fresh or mine_summary.abs_diff_mean
    theirs = theirs_summary.abs_diff_fresh or theirs_summary.abs_diff_mean
    if mine is None or theirs is None:
        return ()
    ratio = mine.value / theirs.value if theirs.value > 0 else None
    times = f", {sig3(ratio)} times the reference's" if ratio is not None else ""
    at_parity = "" if parity.numerics_excess else f" (under {sig3(EXCESS_RATIO)} times is at parity)"
    first = []
    if parity.numerics_excess and mine_summary.abs_diff_first is not None:
        first.append(
            Fact(
                f"It is there from the first step, before any weight update: "
                f"{sig3(mine_summary.abs_diff_first)} nats.",
                "absolute rollout − trainer logprob difference at the first step",
                mine_summary.abs_diff_first,
                "nats",
                FIRST_DEFINITION,
            )
        )
    return (
        Fact(
            f"Mean absolute rollout − trainer logprob difference: {sig3(mine.value)} nats "
            f"(reference: {sig3(theirs.value)} nats){times}{at_parity}.",
            "mean absolute rollout − trainer logprob difference",
            mine.value,
            "nats",
            ABS_DEFINITION,
        ),
        *first,
    )


def _update_facts(parity: ParityFindings) -> tuple[Fact, ...]:
    mine, theirs = parity.candidate_summary, parity.reference_summary
    if mine is None:
        return ()
    facts = []
    if mine.lag_mean is not None and (parity.lag_excess or not parity.update_path):
        reference = (
            f" (reference: {sig3(theirs.lag_mean.value)} versions)"
            if theirs is not None and theirs.lag_mean is not None
            else ""
        )
        facts.append(
            Fact(
                f"Mean weight-version lag: {sig3(mine.lag_mean.value)} versions{reference}.",
                "mean weight-version lag",
                mine.lag_mean.value,
                "versions",
                LAG_DEFINITION,
            )
        )
    if parity.grows_with_lag and mine.abs_diff_stale and mine.abs_diff_fresh:
        facts.append(
            Fact(
                f"On steps run with stale weights the absolute logprob difference is "
                f"{sig3(mine.abs_diff_stale.value)} nats, against "
                f"{sig3(mine.abs_diff_fresh.value)} nats on current-weight steps.",
                "mean absolute rollout − trainer logprob difference on stale steps",
                mine.abs_diff_stale.value,
                "nats",
                ABS_DEFINITION,
            )
        )
    if parity.appears_after_updates and mine.abs_diff_first is not None and mine.abs_diff_later:
        level = theirs.abs_diff_mean.value if theirs and theirs.abs_diff_mean else None
        facts.append(
            Fact(
                f"At the first step, before any weight update, the absolute logprob difference "
                f"is {sig3(mine.abs_diff_first)} nats, at the reference's level "
                f"({sig3(level)} nats); on the later steps it is "
                f"{sig3(mine.abs_diff_later.value)} nats.",
                "absolute rollout − trainer logprob difference at the first step",
                mine.abs_diff_first,
                "nats",
                FIRST_DEFINITION,
            )
        )
    return tuple(facts)


def _update_phrase(parity: ParityFindings) -> str:
    parts = []
    if parity.lag_excess:
        parts.append("it generates on staler weights than the reference")
    if parity.grows_with_lag:
        parts.append("its difference grows with weight-version lag")
    if parity.appears_after_updates:
        parts.append("it matches the reference before the first weight update and not after")
    return ", ".join(parts)


def _missing_parity(parity: ParityFindings) -> tuple[Fact, ...]:
    if parity.candidate_summary is None:
        return (
            Fact(
                "The candidate logged no parity metrics.",
                "parity metrics",
                definition=MISSING_DEFINITION,
            ),
        )
    if parity.reference_summary is None:
        return (
            Fact(
                "The reference logged no parity metrics to compare with.",
                "parity metrics",
                definition=MISSING_DEFINITION,
            ),
        )
    return ()


def _offset_phrase(parity: ParityFindings) -> str:
    mine, theirs = _candidate_reference(parity, "diff_mean")
    phrase = f"rollout − trainer logprobs carry a mean offset of {sig3(mine.value)} nats"
    if theirs is not None:
        phrase += f" (reference {sig3(theirs.value)} nats)"
    return phrase


def _parity(parity: ParityFindings) -> dict[str, Any]:
    """The parity summaries as plain numbers, for programs; the findings are in the facts."""
    evidence: dict[str, Any] = {"candidate": parity.candidate, "reference": parity.reference}
    if parity.offset_z is not None:
        evidence["offset_standard_errors"] = parity.offset_z
    return evidence

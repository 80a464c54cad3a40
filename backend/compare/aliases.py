"""Canonical metrics, the quantity each one is, and the names trainers log that quantity under.

A canonical metric is one quantity, stated in its panel's title (``clip_rate`` is the share of
ratios outside the band, whatever the advantage's sign; ``kl`` is the k3 estimate of the KL
between the trainer's and the rollout engine's distributions). Its aliases are the raw keys that
measure that same quantity, in order of preference: PipelineRL's own names first, because its
definitions are the ones docs/ARCHITECTURE.md's glossary gives, then the other trainers. Each
alias carries what it measures, as its trainer's source defines it. A key that measures
something else has a canonical name of its own (``clip_rate_active``, ``kl_k1``, ``kl_ref``…).

Where a panel's own quantity is missing from a run, the panel may draw a closely related one
(``fallback``: verl's sign-active clip share on the clip-rate panel), but never silently: the
figure carries a "different definition" note naming the key and what it measures
(``definition_note``). The ``rl/`` and ``train/`` prefixes that PipelineRL and slime put in front
of their keys are optional. Per-project aliases come first of all: a project knows its trainer
better than any built-in table.

Deliberately left out: verl's ``training/rollout_probs_diff_mean`` is a difference of
probabilities, not of log-probabilities, so it is not an alias of the parity log-prob metrics.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from backend.errors import BadInput

__all__ = [
    "BUILTIN_ALIASES",
    "CANONICAL_METRICS",
    "DEFAULT_METRICS",
    "PARITY_METRICS",
    "Alias",
    "AliasTable",
    "CanonicalMetric",
    "canonical_of",
    "check_extra_aliases",
    "definition_note",
    "panel_title",
    "resolve_metric",
]

DEFAULT_METRICS: tuple[str, ...] = ("clip_rate", "kl", "entropy", "reward")

PARITY_METRICS: tuple[str, ...] = (
    "logprob_diff_mean",
    "logprob_abs_diff_mean",
    "logprob_abs_diff_max",
    "weight_version_lag",
)


@dataclass(frozen=True)
class Alias:
    """A raw key, the trainer that logs it, and what it measures there."""

    key: str
    trainer: str
    measures: str


@dataclass(frozen=True)
class CanonicalMetric:
    """One quantity: its panel title, its definition, its aliases; ``fallback`` names the
    canonical metric whose keys the panel draws, with a note, when a run has none of its own."""

    name: str
    title: str
    quantity: str
    aliases: tuple[Alias, ...]
    fallback: str | None = None


def _m(name: str, title: str, quantity: str, *aliases: Alias, fallback: str | None = None) -> CanonicalMetric:
    return CanonicalMetric(name, title, quantity, aliases, fallback)


_RATIO_BAND = "ratio new/old outside [1−ε_low, 1+ε_high]"
_SIGN_ACTIVE = "ratio above 1+ε_high with a positive advantage or below 1−ε_low with a negative one"

CANONICAL_METRICS: tuple[CanonicalMetric, ...] = (
    _m("clip_rate", "clip rate: any ratio outside the band",
       f"share of tokens (PPO) or sequences (GSPO) whose {_RATIO_BAND}, whatever the advantage's sign",
       Alias("clamp_log_ratio_new_old_indicator", "PipelineRL", f"share whose {_RATIO_BAND}, sequence mean of token means"),
       fallback="clip_rate_active"),
    _m("clip_rate_active", "clip rate: sign-active clipping only",
       f"share of tokens whose clipped PPO term is the one the objective keeps: {_SIGN_ACTIVE}",
       Alias("clip_ratio/region_mean", "TRL GRPO", f"token share with {_SIGN_ACTIVE}"),
       Alias("clip_ratio", "TRL GRPO (before clip_ratio/region_mean)", f"token share with {_SIGN_ACTIVE}"),
       Alias("policy/clipfrac_avg", "TRL PPO", "token share where the clipped loss exceeds the unclipped one"),
       Alias("actor/pg_clipfrac", "verl", "token share where the clipped loss exceeds the unclipped one"),
       Alias("pg_clipfrac", "slime", "sample mean of the token share where the clipped loss exceeds the unclipped one"),
       Alias("policy/ppo_clip_ratio", "SkyRL", "token share where the clipped surrogate is the smaller one"),
       Alias("ppo_clip_ratio", "OpenRLHF", "token share where the clipped surrogate is below the unclipped one")),
    _m("cispo_clip_rate", "CISPO clip rate: weights capped from above",
       "share of tokens whose ratio exceeds the CISPO cap ε_high with a positive advantage",
       Alias("cispo_clip_ratio", "TRL GRPO (loss_type cispo)", "token share with ratio > ε_high and a positive advantage")),
    _m("kl", "KL new vs old (k3)",
       "token mean of exp(Δ) − Δ − 1, Δ = trainer − rollout log-prob (the k3 estimator)",
       Alias("kl_new_old", "PipelineRL", "k3 of Δ = new − old (old: the rollout engine's), sequence mean of token means"),
       Alias("rollout_corr/k3_kl", "verl", "k3 of Δ = training − rollout log-prob, token mean over the batch"),
       Alias("gen_kl_error", "NeMo-RL", "k3 of Δ = trainer − generation log-prob, token mean, "
             "with the default reference_policy_kl_type k3"),
       fallback="kl_k1"),
    _m("kl_k1", "KL new vs old (signed k1)",
       "token mean of old − new log-prob (the signed k1 estimator; may be negative)",
       Alias("actor/ppo_kl", "verl", "token mean of old − current log-prob during the PPO update"),
       Alias("ppo_kl", "OpenRLHF, slime", "token mean of old − current log-prob during the PPO update")),
    _m("kl_ref", "KL to the reference model",
       "token mean of an estimate of KL(policy ‖ reference model); the estimator is the trainer's setting",
       Alias("kl", "TRL GRPO (β ≠ 0), OpenRLHF", "TRL: k3 of reference − policy log-prob; OpenRLHF: its kl_estimator"),
       Alias("policy/policy_kl", "SkyRL", "its KL loss to the reference model")),
    _m("kl_ref_seq", "KL to the reference model, summed over the sequence",
       "sequence sum of the per-token KL estimate to the reference model, batch mean",
       Alias("objective/kl", "TRL PPO", "sequence sum of k1 (or k3) of policy vs reference log-prob")),
    _m("entropy", "entropy (full vocabulary)",
       "token mean of the entropy of the trainer's full next-token distribution",
       Alias("entropy", "PipelineRL, TRL GRPO", "token mean of the entropy from the logits"),
       Alias("actor/entropy", "verl", "token mean of the entropy from the logits"),
       Alias("entropy_loss", "slime", "sample mean of the entropy from the logits (the entropy itself)"),
       Alias("policy/policy_entropy", "SkyRL", "token mean of the entropy from the logits"),
       fallback="entropy_sampled"),
    _m("entropy_sampled", "entropy estimated from the sampled tokens",
       "token mean of −ρ·log π over the sampled tokens, ρ = π_trainer / π_generation (no full vocabulary)",
       Alias("approx_entropy", "NeMo-RL", "−token mean of exp(current − generation log-prob) × current log-prob")),
    _m("entropy_sampled_seq", "sampled-token negative log-prob, summed over the sequence",
       "sequence sum of −log π of the sampled tokens, batch mean",
       Alias("objective/entropy", "TRL PPO", "sequence sum of −log-prob of the sampled tokens")),
    _m("reward", "reward (mean per sequence)", "mean sequence reward",
       Alias("reward", "PipelineRL, TRL GRPO", "mean sequence reward"),
       Alias("reward_mean", "generic", "mean sequence reward"),
       Alias("objective/rlhf_reward", "TRL PPO", "score minus the KL penalty"),
       Alias("objective/scores", "TRL PPO", "reward model score"),
       Alias("critic/score/mean", "verl", "mean sequence score"),
       Alias("critic/rewards/mean", "verl", "mean sequence reward after penalties"),
       Alias("rollout/raw_reward", "slime", "mean raw reward"),
       Alias("reward/avg_raw_reward", "SkyRL", "mean raw reward")),
    _m("logprob_diff_mean", "log-prob difference rollout − trainer (mean)",
       "token mean of rollout − trainer log-prob on the sampled tokens (signed; the k1 estimate of "
       "KL(rollout ‖ trainer))",
       Alias("parity/logprob_diff_mean", "ParityScope workers",
             "token mean of rollout − trainer log-prob over tokens sampled with the current weights"),
       Alias("rollout_corr/kl", "verl", "token mean of rollout − training log-prob, all tokens"),
       Alias("vllm_kl", "OpenRLHF (IS correction on)", "token mean of vLLM's − the trainer's old log-prob, all tokens")),
    _m("logprob_abs_diff_mean", "|log-prob difference| trainer vs rollout (mean)",
       "token mean of |trainer − rollout log-prob|",
       Alias("parity/logprob_abs_diff_mean", "ParityScope workers", "token mean of |trainer − rollout log-prob|"),
       Alias("sampling/sampling_logp_difference/mean", "TRL GRPO (vLLM IS correction on)",
             "token mean of |old − vLLM log-prob|, averaged over processes"),
       Alias("train_rollout_logprob_abs_diff", "slime", "sample mean of |train − rollout log-prob|"),
       Alias("policy/rollout_train_logprobs_abs_diff_mean", "SkyRL", "token mean of |train − rollout log-prob|")),
    _m("logprob_abs_diff_max", "|log-prob difference| trainer vs rollout (max)",
       "largest |trainer − rollout log-prob| over the step's tokens",
       Alias("parity/logprob_abs_diff_max", "ParityScope workers", "max of |trainer − rollout log-prob|"),
       Alias("sampling/sampling_logp_difference/max", "TRL GRPO (vLLM IS correction on)",
             "max over tokens and processes of |old − vLLM log-prob|"),
       Alias("policy/rollout_train_logprobs_abs_diff_max", "SkyRL", "max of |train − rollout log-prob|")),
    _m("mult_prob_error", "probability ratio error trainer vs rollout",
       "token mean of exp(|trainer − rollout log-prob|): 1 when they agree",
       Alias("token_mult_prob_error", "NeMo-RL", "token mean of exp(|generation − trainer log-prob|)")),
    _m("log_ppl_abs_diff", "|log-perplexity difference| trainer vs rollout",
       "sequence mean of |rollout − trainer mean log-prob per sequence|",
       Alias("rollout_corr/log_ppl_abs_diff", "verl", "batch mean of |per-sequence mean log-prob, rollout − training|")),
    _m("chi2_token", "χ² divergence trainer vs rollout (per token)",
       "token mean of ρ² − 1, ρ = π_trainer / π_rollout",
       Alias("rollout_corr/chi2_token", "verl", "token mean of ρ² − 1, ρ = training / rollout probability")),
    _m("weight_version_lag", "weight version lag", "rollout policy's weight version behind the trainer's",
       Alias("parity/weight_version_lag", "ParityScope workers", "trainer version − rollout weight version")),
)

_BY_NAME: dict[str, CanonicalMetric] = {m.name: m for m in CANONICAL_METRICS}

BUILTIN_ALIASES: dict[str, tuple[str, ...]] = {m.name: tuple(a.key for a in m.aliases) for m in CANONICAL_METRICS}

_OPTIONAL_PREFIXES = ("rl/", "train/")


def _bare(raw_key: str) -> str:
    for prefix in _OPTIONAL_PREFIXES:
        if raw_key.startswith(prefix):
            return raw_key[len(prefix) :]
    return raw_key


def check_extra_aliases(extra_aliases: Mapping[str, object] | None) -> dict[str, tuple[str, ...]]:
    """Validate per-project aliases ``{canonical: raw | [raw, ...]}`` into tuples of raw keys."""
    if extra_aliases is None:
        return {}
    if not isinstance(extra_aliases, Mapping):
        raise BadInput("aliases must map a canonical name to raw metric keys", field="aliases")
    checked: dict[str, tuple[str, ...]] = {}
    for canonical, raw in extra_aliases.items():
        raw_keys = (raw,) if isinstance(raw, str) else raw
        if (
            not isinstance(canonical, str)
            or not canonical
            or not isinstance(raw_keys, Iterable)
            or not all(isinstance(key, str) and key for key in raw_keys)
        ):
            raise BadInput(
                f"alias {canonical!r} must map a name to non-empty metric keys", field="aliases"
            )
        checked[canonical] = tuple(raw_keys)
    return checked


class AliasTable:
    """The built-in aliases plus a project's own, checked once for any number of lookups."""

    def __init__(self, extra_aliases: Mapping[str, object] | None = None) -> None:
        self._extra = check_extra_aliases(extra_aliases)

    def names(self) -> set[str]:
        """Every canonical name, built-in or added per project."""
        return set(BUILTIN_ALIASES) | set(self._extra)

    def _own(self, canonical: str, available_keys: Collection[str]) -> str | None:
        for alias in self._extra.get(canonical, ()) + BUILTIN_ALIASES.get(canonical, ()):
            if alias in available_keys:
                return alias
            for prefix in _OPTIONAL_PREFIXES:
                if prefix + alias in available_keys:
                    return prefix + alias
        return None

    def candidate_keys(self, name: str) -> list[str]:
        """Every raw key that ``name`` could resolve to in some run, ``name`` itself first."""
        canonical = (
            name if name in BUILTIN_ALIASES or name in self._extra else self.canonical_of(name)
        )
        keys = [name]
        if canonical is not None:
            metric = _BY_NAME.get(canonical)
            # The panel's own aliases first, then its fallback's (drawn with a note).
            for source in (canonical, metric.fallback if metric is not None else None):
                if source is None:
                    continue
                for alias in self._extra.get(source, ()) + BUILTIN_ALIASES.get(source, ()):
                    keys.extend(prefix + alias for prefix in ("", *_OPTIONAL_PREFIXES))
        return list(dict.fromkeys(keys))

    def resolve(self, name: str, available_keys: Collection[str]) -> str | None:
        """The raw key of ``available_keys`` that ``name`` stands for (see ``resolve_metric``)."""
        if name in available_keys and not self._names_another_quantity(name):
            return name
        canonical = (
            name if name in self._extra or name in BUILTIN_ALIASES else self.canonical_of(name)
        )
        if canonical is None:
            return None
        found = self._own(canonical, available_keys)
        metric = _BY_NAME.get(canonical)
        if found is None and metric is not None and metric.fallback is not None:
            found = self._own(metric.fallback, available_keys)
        if found is None and name in available_keys:
            found = name  # another quantity's key of the same spelling, drawn with its note
        return found

    def _names_another_quantity(self, name: str) -> bool:
        """A canonical name that is also a trainer's raw key for another quantity: ``kl`` is the
        k3 KL new vs old, while the key ``kl`` that TRL and OpenRLHF log is the KL to the
        reference model (``kl_ref``). Such a key comes last, after the panel's own aliases and
        its fallback's, and is drawn with its ``definition_note``."""
        return name in BUILTIN_ALIASES and name not in self._extra and self.canonical_of(name) not in (None, name)

    def canonical_of(self, raw_key: str) -> str | None:
        """The canonical name that ``raw_key`` (with or without its optional prefix) is an alias of."""
        bare = _bare(raw_key)
        for table in (self._extra, BUILTIN_ALIASES):
            for canonical, aliases in table.items():
                if raw_key in aliases or bare in aliases:
                    return canonical
        return None


def resolve_metric(
    name: str,
    available_keys: Collection[str],
    extra_aliases: Mapping[str, object] | None = None,
) -> str | None:
    """The raw key of ``available_keys`` that ``name`` stands for in one run, or None.

    ``name`` may be a raw key (returned when the run has it) or a canonical name, whose aliases
    are tried in order of preference, each first as written and then behind an optional
    ``rl/`` or ``train/`` prefix, and then its fallback's (drawn with ``definition_note``). A
    raw key that the run lacks but that is a known alias (say ``rl/kl_new_old`` asked of a
    NeMo-RL run) resolves through its canonical name, so one request overlays runs from
    different trainers. A canonical name that is also another quantity's raw key (``kl``, the
    KL to the reference model of TRL and OpenRLHF) finds that key only when the run has neither
    an alias of the panel's quantity nor of its fallback, and it is drawn with its note;
    ``kl_ref`` asks for it by its own quantity.
    """
    return AliasTable(extra_aliases).resolve(name, available_keys)


def canonical_of(raw_key: str, extra_aliases: Mapping[str, object] | None = None) -> str | None:
    """The canonical name that ``raw_key`` (with or without its optional prefix) is an alias of."""
    return AliasTable(extra_aliases).canonical_of(raw_key)


def _builtin_alias(raw_key: str) -> tuple[CanonicalMetric, Alias] | None:
    bare = _bare(raw_key)
    for metric in CANONICAL_METRICS:
        for alias in metric.aliases:
            if alias.key in (raw_key, bare):
                return metric, alias
    return None


def panel_title(name: str) -> str:
    """A panel's title: a canonical name with the quantity it shows; a raw key as it is."""
    metric = _BY_NAME.get(name) or _BY_NAME.get(canonical_of(name) or "")
    return f"{name} · {metric.title}" if metric is not None else name


def definition_note(name: str, raw_key: str | None) -> str | None:
    """The note a panel for ``name`` carries when it draws ``raw_key``, a built-in alias of
    another quantity (a fallback); None when the key measures the panel's own quantity."""
    if raw_key is None:
        return None
    panel = _BY_NAME.get(name) or _BY_NAME.get(canonical_of(name) or "")
    found = _builtin_alias(raw_key)
    if panel is None or found is None or found[0].name == panel.name:
        return None
    metric, alias = found
    return (
        f"different definition: {raw_key} ({alias.trainer}) is {metric.title}, "
        f"{alias.measures}; this panel is {panel.title}"
    )

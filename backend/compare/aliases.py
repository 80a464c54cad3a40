"""Canonical metrics and the names trainers log them under.

A canonical name (``clip_rate``, ``kl``, ``entropy``, ``reward``, and the parity metrics) maps
to raw keys in order of preference: PipelineRL's own names first, because its definitions are
the ones DESIGN.md §1 gives, then TRL, verl, slime and SkyRL. The ``rl/`` and ``train/``
prefixes that PipelineRL and slime put in front of their keys are optional. Per-project aliases
come first of all: a project knows its trainer better than any built-in table.

Deliberately left out: verl's ``training/rollout_probs_diff_mean`` is a difference of
probabilities, not of log-probabilities, so it is not an alias of the parity log-prob metrics.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from backend.errors import BadInput

__all__ = [
    "BUILTIN_ALIASES",
    "DEFAULT_METRICS",
    "PARITY_METRICS",
    "AliasTable",
    "canonical_of",
    "check_extra_aliases",
    "resolve_metric",
]

DEFAULT_METRICS: tuple[str, ...] = ("clip_rate", "kl", "entropy", "reward")

PARITY_METRICS: tuple[str, ...] = (
    "logprob_diff_mean",
    "logprob_abs_diff_mean",
    "logprob_abs_diff_max",
    "weight_version_lag",
)

BUILTIN_ALIASES: dict[str, tuple[str, ...]] = {
    "clip_rate": (
        "clamp_log_ratio_new_old_indicator",  # PipelineRL
        "clip_ratio/region_mean",  # TRL GRPO
        "clip_ratio",  # older TRL GRPO
        "policy/clipfrac_avg",  # TRL PPO
        "actor/pg_clipfrac",  # verl
        "pg_clipfrac",  # slime (train/ prefix)
        "policy/ppo_clip_ratio",  # SkyRL
    ),
    "kl": (
        "kl_new_old",  # PipelineRL
        "kl",  # TRL GRPO
        "objective/kl",  # TRL PPO
        "actor/ppo_kl",  # verl
        "ppo_kl",  # slime
        "policy/policy_kl",  # SkyRL
    ),
    "entropy": (
        "entropy",  # PipelineRL, TRL GRPO
        "objective/entropy",  # TRL PPO
        "actor/entropy",  # verl
        "entropy_loss",  # slime logs the entropy itself under this name
        "policy/policy_entropy",  # SkyRL
    ),
    "reward": (
        "reward",  # PipelineRL, TRL GRPO
        "reward_mean",
        "objective/rlhf_reward",  # TRL PPO
        "objective/scores",
        "critic/score/mean",  # verl
        "critic/rewards/mean",
        "rollout/raw_reward",  # slime
        "reward/avg_raw_reward",  # SkyRL
    ),
    "logprob_diff_mean": ("parity/logprob_diff_mean",),
    "logprob_abs_diff_mean": (
        "parity/logprob_abs_diff_mean",
        "train_rollout_logprob_abs_diff",  # slime
        "policy/rollout_train_logprobs_abs_diff_mean",  # SkyRL
    ),
    "logprob_abs_diff_max": (
        "parity/logprob_abs_diff_max",
        "policy/rollout_train_logprobs_abs_diff_max",  # SkyRL
    ),
    "weight_version_lag": ("parity/weight_version_lag",),
}

_OPTIONAL_PREFIXES = ("rl/", "train/")


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

    def resolve(self, name: str, available_keys: Collection[str]) -> str | None:
        """The raw key of ``available_keys`` that ``name`` stands for (see ``resolve_metric``)."""
        if name in available_keys:
            return name
        canonical = (
            name if name in self._extra or name in BUILTIN_ALIASES else self.canonical_of(name)
        )
        if canonical is None:
            return None
        aliases = self._extra.get(canonical, ()) + BUILTIN_ALIASES.get(canonical, ())
        for alias in aliases:
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
            for alias in self._extra.get(canonical, ()) + BUILTIN_ALIASES.get(canonical, ()):
                keys.extend(prefix + alias for prefix in ("", *_OPTIONAL_PREFIXES))
        return list(dict.fromkeys(keys))

    def canonical_of(self, raw_key: str) -> str | None:
        """The canonical name that ``raw_key`` (with or without its optional prefix) is an alias of."""
        bare = raw_key
        for prefix in _OPTIONAL_PREFIXES:
            if raw_key.startswith(prefix):
                bare = raw_key[len(prefix) :]
                break
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
    ``rl/`` or ``train/`` prefix. A raw key that the run lacks but that is a known alias (say
    ``rl/kl_new_old`` asked of a verl run) resolves through its canonical name, so one request
    overlays runs from different trainers.
    """
    if name in available_keys:
        return name
    return AliasTable(extra_aliases).resolve(name, available_keys)


def canonical_of(raw_key: str, extra_aliases: Mapping[str, object] | None = None) -> str | None:
    """The canonical name that ``raw_key`` (with or without its optional prefix) is an alias of."""
    return AliasTable(extra_aliases).canonical_of(raw_key)

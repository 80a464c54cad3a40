"""The configuration difference between a candidate and the reference, key by key.

Both the run's nested config and its engine description (under ``engine.``) are flattened to
dotted keys. Keys are matched across runs by their normalised spelling (``logprobs-mode`` and
``logprobs_mode`` are one key) and reported under the reference's spelling. With a reference
group the first reference's value is "the" reference value; a key whose value already differs
among the replicas (typically the seed) is marked ``varies_among_references``: the band was
built across that variation, so a candidate differing there is still like-for-like. A key that
differs among replicas by design (each leg's ``sampling_seed``, see
``registry.EXPECTED_DIFFERENCES``) is marked ``expected`` even against a single reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from backend.compare.config_values import ABSENT, expand_text_mappings, is_bookkeeping, same_meaning
from backend.compare.registry import LAYERS, KeyRegistry, is_expected_difference, normalise_key

__all__ = ["ConfigDifference", "config_diff", "flatten_config", "run_settings"]

_MISSING = object()


@dataclass(frozen=True)
class ConfigDifference:
    key: str
    layer: str
    reference_value: Any
    candidate_value: Any
    missing_in: Literal["reference", "candidate"] | None
    varies_among_references: bool
    expected: bool = False
    differs: bool = True
    replica_values: tuple[Any, ...] = ()


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings flattened to ``{"a.b.c": value}``; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, path))
        else:
            flat[path] = value
    return flat


def run_settings(config: Mapping[str, Any], engine: Mapping[str, Any]) -> dict[str, Any]:
    """A run's config and engine description as one flat mapping (engine keys under ``engine.``)."""
    flat = flatten_config(expand_text_mappings(config or {}))
    settings = {key: value for key, value in flat.items() if not is_bookkeeping(key)}
    if engine:
        settings.update(flatten_config({"engine": engine}))
    return settings


def config_diff(
    references: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    candidate: tuple[Mapping[str, Any], Mapping[str, Any]],
    registry: KeyRegistry,
    *,
    every_key: bool = False,
) -> list[ConfigDifference]:
    """Every key whose candidate value differs from the reference's, with its layer.

    ``references`` and ``candidate`` are ``(config, engine)`` pairs. The result is ordered by
    layer (workload, semantic, inference-path, objective, unclassified), then by key. With
    ``every_key`` the keys whose values agree are listed too, with ``differs`` False: the same
    table, every key in it.
    """
    reference_settings = [_by_identity(run_settings(*pair)) for pair in references]
    candidate_settings = _by_identity(run_settings(*candidate))
    primary = reference_settings[0]
    identities = list(primary) + [key for key in candidate_settings if key not in primary]

    differences = []
    for identity in identities:
        spelling, reference_value = primary.get(identity, (None, _MISSING))
        candidate_spelling, candidate_value = candidate_settings.get(identity, (None, _MISSING))
        differs = not _same(reference_value, candidate_value)
        replica_values = [s.get(identity, (None, _MISSING))[1] for s in reference_settings]
        varies = any(not _same(replica_values[0], value) for value in replica_values[1:])
        if not differs and not (every_key or varies):
            continue
        key = spelling or candidate_spelling
        differences.append(
            ConfigDifference(
                key=key,
                layer=registry.classify(key),
                reference_value=None if reference_value is _MISSING else reference_value,
                candidate_value=None if candidate_value is _MISSING else candidate_value,
                missing_in=(
                    "reference"
                    if reference_value is _MISSING
                    else "candidate"
                    if candidate_value is _MISSING
                    else None
                ),
                varies_among_references=varies,
                expected=varies or is_expected_difference(key),
                differs=differs,
                replica_values=(
                    tuple(None if v is _MISSING else v for v in replica_values)
                    if len(replica_values) > 1
                    else ()
                ),
            )
        )
    if not every_key:
        differences = [d for d in differences if d.differs]
    order = {layer: rank for rank, layer in enumerate(LAYERS)}
    differences.sort(key=lambda d: (order.get(d.layer, len(LAYERS)), d.key))
    return differences


def _by_identity(settings: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    return {".".join(normalise_key(key)): (key, value) for key, value in settings.items()}


def _same(first: Any, second: Any) -> bool:
    # Equality by meaning lives in config_values ("0.1" == 0.1, "True" == true, absent == null).
    return same_meaning(
        ABSENT if first is _MISSING else first, ABSENT if second is _MISSING else second
    )

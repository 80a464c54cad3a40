"""The response body of ``GET /api/v1/compare``, built from a ``Comparison``.

Encodings (see ``backend.compare.encoding``): series, bands, diffs, effect sizes, config values
and evidence use the API value encoding (NaN as ``"NaN"``, ±inf as ``"Infinity"`` /
``"-Infinity"``); figures carry Plotly typed arrays with NaN gaps. Run ids keep their type in ``run_id`` fields and become
strings where they key an object.

Shape::

    {
      "references": [id, ...], "candidates": [id, ...],
      "settings": {"start", "end", "max_points", "smoothing", "band_k", "divergence_k"},
      "metrics": {
        metric: {
          "resolved": {run_id: raw_key | null},
          "series": [{"run_id", "name", "role", "key", "downsampled", "x", "y", "y_min", "y_max"}],
          "band": {"source", "k", "x", "lower", "center", "upper",
                   "reference_outside_rate"} | null,
          "candidates": {run_id: {"diff": {"x", "y"} | null, "first_divergence_step",
                                  "effect_size", "direction", "compared_steps"}},
          "markers": [{"run_id", "name", "metric", "step", "last_step", "direction",
                       "outside_steps", "stretch_steps", "above", "below", "distance",
                       "reference_rate", "bucket_steps", "summary", "detail"}]
        }
      },
      "config_diff": {candidate_id: [config_row, ...]},      # the keys that differ
      "config_table": {candidate_id: [config_row, ...]},     # every key, same rows
      "diagnosis": {candidate_id: {"starting_layer", "like_for_like", "unclassified_keys",
                                   "verdicts": [{"layer", "verdict", "evidence", "sentence",
                                                 "facts": [{"fact", "quantity", "value",
                                                            "unit", "definition"}]}]}},
      "figures": {metric: {"overlay": plotly_spec, "diff": plotly_spec}},
      "definitions": {"markers": {marker_field: definition}}   # tooltip text
    }

    config_row = {"key", "layer", "reference_value", "candidate_value", "missing_in",
                  "varies_among_references", "expected", "differs", "replica_values"}

docs/API.md describes every field.
"""

from __future__ import annotations

from typing import Any

from backend.compare.comparison import CandidateMetric, Comparison, MetricComparison, RunMetric
from backend.compare.configdiff import ConfigDifference
from backend.compare.diagnosis import Diagnosis
from backend.compare.divergence import MARKER_DEFINITIONS, marker_words
from backend.compare.encoding import api_number, api_numbers, api_value, steps_list

__all__ = ["comparison_to_json"]


def comparison_to_json(comparison: Comparison) -> dict[str, Any]:
    """The JSON-ready response body for ``comparison`` (plain dicts, lists, str, int, float)."""
    return {
        "references": list(comparison.reference_ids),
        "candidates": list(comparison.candidate_ids),
        "settings": api_value(comparison.settings),
        "metrics": {m.metric: _metric(m) for m in comparison.metrics},
        "config_diff": {
            run_id: [_config_row(d) for d in differences]
            for run_id, differences in comparison.config_diff.items()
        },
        "config_table": {
            run_id: [_config_row(d) for d in rows]
            for run_id, rows in comparison.config_table.items()
        },
        "diagnosis": {
            run_id: _diagnosis(diagnosis) for run_id, diagnosis in comparison.diagnosis.items()
        },
        "figures": {m.metric: m.figures for m in comparison.metrics},
        "definitions": {"markers": dict(MARKER_DEFINITIONS)},
    }


def _metric(metric: MetricComparison) -> dict[str, Any]:
    band = None
    if metric.band is not None and metric.band_display is not None:
        shown = metric.band_display
        band = {
            "source": metric.band.source,
            "k": metric.band.k,
            "x": steps_list(shown.x),
            "lower": api_numbers(shown.lower),
            "center": api_numbers(shown.center),
            "upper": api_numbers(shown.upper),
            "reference_outside_rate": (
                metric.band.own_outside_steps / metric.band.own_compared_steps
                if metric.band.own_compared_steps
                else None
            ),
        }
    names = {str(run.run_id): run.name for run in metric.runs}
    return {
        "resolved": {str(run.run_id): run.key for run in metric.runs},
        "series": [_run(run) for run in metric.runs],
        "band": band,
        "candidates": {str(c.run_id): _candidate(c) for c in metric.candidates},
        "markers": [
            _marker(metric.metric, c, names[str(c.run_id)])
            for c in metric.candidates
            if c.divergence is not None and c.divergence.first_divergence_step is not None
        ],
    }


def _marker(metric: str, candidate: CandidateMetric, name: str) -> dict[str, Any]:
    divergence = candidate.divergence
    assert divergence is not None
    summary, detail = marker_words(metric, divergence)
    return {
        "run_id": candidate.run_id,
        "name": name,
        "metric": metric,
        "step": divergence.first_divergence_step,
        "last_step": divergence.last_step,
        "direction": divergence.direction,
        "outside_steps": divergence.stretch_outside,
        "stretch_steps": divergence.stretch_steps,
        "above": divergence.above,
        "below": divergence.below,
        "distance": api_number(divergence.effect_size),
        "reference_rate": api_number(divergence.reference_rate),
        "bucket_steps": divergence.bucket_steps,
        "summary": summary,
        "detail": detail,
    }


def _config_row(d: ConfigDifference) -> dict[str, Any]:
    return {
        "key": d.key,
        "layer": d.layer,
        "reference_value": api_value(d.reference_value),
        "candidate_value": api_value(d.candidate_value),
        "missing_in": d.missing_in,
        "varies_among_references": d.varies_among_references,
        "expected": d.expected,
        "differs": d.differs,
        "replica_values": [api_value(v) for v in d.replica_values],
    }


def _run(run: RunMetric) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "run_id": run.run_id,
        "name": run.name,
        "role": run.role,
        "key": run.key,
        "downsampled": run.downsampled,
    }
    series = run.series
    entry.update(
        x=steps_list(series.x) if series else [],
        y=api_numbers(series.y) if series else [],
        y_min=api_numbers(series.y_min) if series else [],
        y_max=api_numbers(series.y_max) if series else [],
    )
    return entry


def _candidate(candidate: CandidateMetric) -> dict[str, Any]:
    divergence = candidate.divergence
    diff = None
    if candidate.diff is not None:
        diff = {"x": steps_list(candidate.diff.x), "y": api_numbers(candidate.diff.y)}
    return {
        "diff": diff,
        "first_divergence_step": divergence.first_divergence_step if divergence else None,
        "effect_size": api_number(divergence.effect_size) if divergence else None,
        "direction": divergence.direction if divergence else None,
        "compared_steps": divergence.compared_steps if divergence else 0,
    }


def _diagnosis(diagnosis: Diagnosis) -> dict[str, Any]:
    return {
        "starting_layer": diagnosis.starting_layer,
        "like_for_like": diagnosis.like_for_like,
        "unclassified_keys": list(diagnosis.unclassified_keys),
        "verdicts": [
            {
                "layer": v.layer,
                "verdict": v.verdict,
                "evidence": api_value(v.evidence),
                "sentence": v.sentence,
                "facts": [api_value(fact.as_json()) for fact in v.facts],
            }
            for v in diagnosis.verdicts
        ],
    }

"""Comparison of candidate runs against a reference and the layer-by-layer diagnosis.

Pure code: plain data in (``RunSeries``), plain data out (``Comparison``, and the response body
from ``comparison_to_json``). Storage and HTTP live elsewhere.
"""

from backend.compare.aliases import DEFAULT_METRICS, resolve_metric
from backend.compare.comparison import Comparison, build_comparison
from backend.compare.diagnosis import Diagnosis, LayerVerdict, diagnose
from backend.compare.registry import LAYERS, KeyRegistry, classify_key
from backend.compare.response import comparison_to_json
from backend.compare.run_series import RunSeries

__all__ = [
    "DEFAULT_METRICS",
    "LAYERS",
    "Comparison",
    "Diagnosis",
    "KeyRegistry",
    "LayerVerdict",
    "RunSeries",
    "build_comparison",
    "classify_key",
    "comparison_to_json",
    "diagnose",
    "resolve_metric",
]

"""/api/v1/meta: the defaults and bounds the dashboard's pages start from.

Python declares each of these once; the pages read them here instead of keeping copies
(frontend/js/meta.js). No token is needed: nothing here is about a project.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.compare.aliases import PARITY_METRICS
from backend.compare.downsample import MAX_POINTS_LIMIT, MIN_POINTS_LIMIT
from backend.compare.registry import LAYERS, UNCLASSIFIED
from backend.comparing import MAX_RUNS_PER_COMPARISON, CompareOptions
from parityscope.jobspec import ENGINE_NAMES

router = APIRouter(tags=["meta"])


@router.get(
    "/api/v1/meta",
    response_description='{"compare": {defaults and bounds of GET /api/v1/compare}, "layers", "engines"}',
)
def meta() -> dict[str, Any]:
    defaults = CompareOptions()
    return {
        "compare": {
            "default_metrics": defaults.metric_names,
            "parity_metrics": list(PARITY_METRICS),
            "max_points": {
                "default": defaults.max_points,
                "min": MIN_POINTS_LIMIT,
                "max": MAX_POINTS_LIMIT,
            },
            "smoothing": defaults.smoothing,
            "band_k": defaults.band_k,
            "divergence_k": defaults.divergence_k,
            "max_runs": MAX_RUNS_PER_COMPARISON,
        },
        "layers": [*LAYERS, UNCLASSIFIED],
        "engines": list(ENGINE_NAMES),
    }

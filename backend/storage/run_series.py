"""Loading runs' metric series as the comparison's plain input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from backend.compare.aliases import PARITY_METRICS, resolve_metric
from backend.compare.run_series import RunSeries
from backend.domain import Run
from backend.storage.metrics import MetricStore


def load_run_series(
    session: Session,
    runs: Sequence[Run],
    metric_names: Sequence[str],
    aliases: Mapping[str, list[str]],
    start: int | None = None,
    end: int | None = None,
) -> list[RunSeries]:
    """Each run with the series the comparison will use: the asked metrics, resolved through
    the alias table, and the parity metrics. Only those keys are read, and only inside the
    ``[start, end]`` window."""
    store = MetricStore(session)
    loaded = []
    for run in runs:
        available = store.key_names(run.id)
        wanted = {
            key
            for name in [*metric_names, *PARITY_METRICS]
            if (key := resolve_metric(name, available, aliases)) is not None
        }
        # A raw key that no run has must still reach the comparison so it can name it.
        series = store.read_arrays(run.id, sorted(wanted), start, end) if wanted else {}
        loaded.append(
            RunSeries(
                run_id=run.id,
                name=run.name,
                label=run.label,
                config=run.config,
                engine=run.engine or {},
                series=series,
            )
        )
    return loaded

"""Loading runs' metric series as the comparison's plain input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from backend.compare.aliases import PARITY_METRICS, resolve_metric
from backend.compare.align import within_window
from backend.compare.run_series import RunSeries
from backend.domain import Run
from backend.storage.metrics import MetricStore
from backend.storage.series_cache import SeriesCache


def load_run_series(
    session: Session,
    runs: Sequence[Run],
    metric_names: Sequence[str],
    aliases: Mapping[str, list[str]],
    start: int | None = None,
    end: int | None = None,
    cache: SeriesCache | None = None,
) -> list[RunSeries]:
    """Each run with the series the comparison will use: the asked metrics, resolved through
    the alias table, and the parity metrics, cut to the ``[start, end]`` window. Only those keys
    are read; with a ``cache``, whole series are kept between requests until the run changes."""
    store = MetricStore(session)
    loaded = []
    for run in runs:
        available = set(store.key_names(run.id))
        wanted = {
            key
            for name in [*metric_names, *PARITY_METRICS]
            if (key := resolve_metric(name, available, aliases)) is not None
        }
        if cache is None:
            series = store.read_arrays(run.id, sorted(wanted), start, end) if wanted else {}
        else:
            series = {}
            missing = []
            for key in sorted(wanted):
                hit = cache.get(run.id, key, run.updated_at)
                if hit is None:
                    missing.append(key)
                else:
                    series[key] = hit
            if missing:
                for key, whole in store.read_arrays(run.id, missing).items():
                    cache.put(run.id, key, run.updated_at, whole)
                    series[key] = whole
            series = {key: within_window(whole, start, end) for key, whole in series.items()}
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

"""/api/v1/runs/{run_id}/metrics and /keys"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from backend.api.deps import RawBody, ReadableRun, SessionDep, SettingsDep, WritableRun
from backend.api.json import orjson_response
from backend.api.schemas import METRICS_BODY_SCHEMA, IngestOut, KeyOut, SeriesOut
from backend.errors import BadInput
from backend.ingest import check_key, parse_body
from backend.storage.metrics import MetricStore
from parityscope.wire import MAX_STEP, encode_value

router = APIRouter(prefix="/api/v1/runs/{run_id}", tags=["metrics"])


@router.post("/metrics", response_model=IngestOut, openapi_extra=METRICS_BODY_SCHEMA)
def post_metrics(
    run: WritableRun,
    session: SessionDep,
    settings: SettingsDep,
    body: RawBody,
) -> IngestOut:
    batch = parse_body(
        body, max_bytes=settings.max_body_bytes, max_values=settings.max_values_per_request
    )
    result = MetricStore(session).ingest(run.id, batch)
    return IngestOut(accepted=result.accepted, replaced=result.replaced)


@router.get(
    "/metrics",
    response_model=dict[str, SeriesOut],
    response_description="Series by key, values in the wire encoding (NaN and ±Infinity as strings)",
)
def get_metrics(
    run: ReadableRun,
    session: SessionDep,
    keys: Annotated[str | None, Query(description="comma-separated metric keys; all when absent")] = None,
    start: Annotated[int | None, Query(ge=0, le=MAX_STEP)] = None,
    end: Annotated[int | None, Query(ge=0, le=MAX_STEP)] = None,
) -> Response:
    wanted = None
    if keys is not None:
        wanted = [check_key(k, "keys") for k in keys.split(",") if k]
        if not wanted:
            raise BadInput("keys: give at least one metric key", field="keys")
    if start is not None and end is not None and start > end:
        raise BadInput("start: must not be greater than end", field="start")
    series = MetricStore(session).read_series(run.id, wanted, start, end)
    return orjson_response(
        {
            name: {"steps": steps, "values": [encode_value(v) for v in values]}
            for name, (steps, values) in series.items()
        }
    )


@router.get("/keys", response_model=list[KeyOut])
def get_keys(run: ReadableRun, session: SessionDep) -> list[KeyOut]:
    return [
        KeyOut(key=k.key, count=k.count, first_step=k.first_step, last_step=k.last_step)
        for k in MetricStore(session).keys(run.id)
    ]

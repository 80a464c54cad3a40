"""/api/2.0/mlflow/…: the part of MLflow's tracking REST API that training scripts use.

Request and response bodies follow MLflow's REST reference; errors are MLflow's
``{"error_code": ..., "message": ...}`` with MLflow's status codes, so the official client
(``MLFLOW_TRACKING_URI`` pointing here, ``MLFLOW_TRACKING_TOKEN`` a ParityScope token) and
transformers' ``report_to="mlflow"`` work unchanged. The mapping onto projects and runs is
described in ``backend.mlflow_compat.entities``.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from sqlalchemy.orm import Session

from backend.api.deps import OptionalToken, SessionDep, SettingsDep, check_read, check_write
from backend.api.mlflow_errors import EndpointNotFound, MlflowRoute
from backend.api.schemas import printable
from backend.domain import PointBatch, Project, Run, Scope, Token
from backend.errors import BadInput, Conflict, Forbidden, NotAuthenticated, NotFound
from backend.ingest import check_key, check_step
from backend.mlflow_compat import entities as ml
from backend.mlflow_compat.search import (
    EXPERIMENT_NUMBER_ATTRIBUTES,
    EXPERIMENT_TEXT_ATTRIBUTES,
    RunView,
    matches,
    parse_filter,
    parse_order_by,
    sort_runs,
)
from backend.settings import Settings
from backend.storage.logged_models import LoggedModelStore
from backend.storage.metrics import MetricStore, lock_run_points
from backend.storage.mlflow import TrackingStore
from backend.storage.projects import ProjectStore
from backend.storage.runs import RunStore
from parityscope.wire import MAX_KEY_LENGTH

PREFIX = "/api/2.0/mlflow"
MAX_SEARCH_RESULTS = 50_000


router = APIRouter(prefix=PREFIX, tags=["mlflow"], route_class=MlflowRoute)


# -- request bodies (MLflow's field names; unknown fields are ignored, as MLflow's server does) --


class MlflowBody(BaseModel):
    model_config = ConfigDict(extra="ignore")


# Param and tag keys, metric keys: printable, at most 250 characters (MLflow's limit too).
EntityKey = Annotated[str, WithJsonSchema(printable(MAX_KEY_LENGTH))]


class KeyValue(MlflowBody):
    key: EntityKey
    value: str = ""


class MetricIn(MlflowBody):
    key: EntityKey
    value: Any = None
    timestamp: int | None = None
    step: int = 0


# A run is named by run_id or by its deprecated alias run_uuid; one of the two, not empty.
_NAMES_A_RUN = {
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
        for name in ("run_id", "run_uuid")
    ]
}
# Page tokens this API returns: a run offset or a first step, in ASCII digits (or none).
_PAGE_TOKEN = {"pattern": "^[0-9]*$"}
# run_view_type, in any case (empty: ACTIVE_ONLY).
_VIEW_TYPE = {"pattern": "^(?:" + "|".join(
    "".join(f"[{c}{c.lower()}]" if c.isalpha() else c for c in name) for name in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL", "")
) + ")$"}
# The page sizes the searches accept (checked by hand for MLflow's own messages).
_MAX_RESULTS = {"minimum": 1, "maximum": MAX_SEARCH_RESULTS}


class RunRef(MlflowBody):
    model_config = ConfigDict(extra="ignore", json_schema_extra=_NAMES_A_RUN)

    run_id: str | None = None
    run_uuid: str | None = Field(default=None, description="deprecated alias of run_id")

    @property
    def ref(self) -> str:
        if not (self.run_id or self.run_uuid):
            raise BadInput("run_id: Missing value for required parameter 'run_id'", field="run_id")
        return self.run_id or self.run_uuid or ""


class CreateExperiment(MlflowBody):
    # 1-200 characters, not all of them white space, no NUL.
    name: str = Field(json_schema_extra={"maxLength": 200, "pattern": r"^[^\u0000]*[^\s\u0000][^\u0000]*$"})
    artifact_location: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class CreateRun(MlflowBody):
    experiment_id: str | None = None
    user_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class UpdateRun(RunRef):
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class LogBatch(RunRef):
    metrics: list[MetricIn] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class LogMetric(RunRef):
    key: EntityKey
    value: Any = None
    timestamp: int | None = None
    step: int = 0


class LogParam(RunRef):
    key: EntityKey
    value: str


class SetTag(RunRef):
    key: EntityKey
    value: str


class DeleteTag(RunRef):
    key: str


class SearchExperiments(MlflowBody):
    max_results: int = Field(default=1000, json_schema_extra=_MAX_RESULTS)
    page_token: str | None = Field(default=None, json_schema_extra=_PAGE_TOKEN)
    filter: str | None = None
    order_by: list[str] = Field(default_factory=list)
    view_type: str | None = None


class DatasetIn(MlflowBody):
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    dataset_schema: str | None = Field(default=None, alias="schema")
    profile: str | None = None


class DatasetInputIn(MlflowBody):
    tags: list[KeyValue] = Field(default_factory=list)
    dataset: DatasetIn


class ModelRef(MlflowBody):
    model_id: str
    step: int = 0


class LogInputs(RunRef):
    datasets: list[DatasetInputIn] = Field(default_factory=list)
    models: list[ModelRef] = Field(default_factory=list)


class LogOutputs(RunRef):
    models: list[ModelRef] = Field(default_factory=list)


class CreateLoggedModel(MlflowBody):
    experiment_id: str
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class FinalizeLoggedModel(MlflowBody):
    status: str


class LoggedModelTags(MlflowBody):
    tags: list[KeyValue] = Field(default_factory=list)


class LoggedModelParams(MlflowBody):
    params: list[KeyValue] = Field(default_factory=list)


class SearchLoggedModels(MlflowBody):
    experiment_ids: list[str] = Field(default_factory=list)
    max_results: int = 100


class SearchRuns(MlflowBody):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    run_view_type: str | None = Field(default=None, json_schema_extra=_VIEW_TYPE)
    max_results: int = Field(default=1000, json_schema_extra=_MAX_RESULTS)
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = Field(default=None, json_schema_extra=_PAGE_TOKEN)


# -- lookups and permission checks --------------------------------------------------------


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts characters such as '²' that int() refuses."""
    return text.isascii() and text.isdigit()


def _project_for(
    session: Session, token: Token | None, settings: Settings, experiment_id: str | None, *, write: bool
) -> Project:
    experiment_id = experiment_id or ml.DEFAULT_EXPERIMENT_ID
    if experiment_id == ml.DEFAULT_EXPERIMENT_ID:
        # MLflow's default experiment: the project the token belongs to.
        if token is None or token.project_id is None:
            raise NotFound(
                "experiment_id: ParityScope has no default experiment; use a project token, or set "
                "MLFLOW_EXPERIMENT_NAME to a project's name or slug",
                field="experiment_id",
            )
        experiment_id = str(token.project_id)
    if not _is_number(experiment_id):
        raise NotFound(f"Could not find experiment with ID {experiment_id}", field="experiment_id")
    try:
        project = ProjectStore(session).get(int(experiment_id))
    except NotFound:
        raise NotFound(f"Could not find experiment with ID {experiment_id}", field="experiment_id") from None
    _check_access(token, settings, project.id, write=write)
    return project


def _run_for(session: Session, token: Token | None, settings: Settings, ref: str, *, write: bool) -> Run:
    if not _is_number(ref) or len(ref) > 18:
        raise NotFound(f"Run with id={ref} not found", field="run_id")
    try:
        run = RunStore(session).get(int(ref))
    except NotFound:
        raise NotFound(f"Run with id={ref} not found", field="run_id") from None
    _check_access(token, settings, run.project_id, write=write)
    return run


def _check_access(token: Token | None, settings: Settings, project_id: int, *, write: bool) -> None:
    if write:
        check_write(token, project_id)
    else:
        check_read(token, project_id, settings)


def _page_start(page_token: str | None) -> int:
    """Where a page token returned by this API starts: a run offset, or a history's first step."""
    if not page_token:
        return 0
    if not _is_number(page_token):
        raise BadInput("page_token: not a token returned by this API", field="page_token")
    return int(page_token)


def _point_batch(metrics: list[MetricIn]) -> PointBatch:
    batch = PointBatch()
    for i, metric in enumerate(metrics):
        where = f"metrics[{i}]"
        key = check_key(metric.key, f"{where}.key")
        step = check_step(metric.step, f"{where}.step")
        value = ml.metric_value(metric.value, f"{where}.value")
        time = None if metric.timestamp is None else metric.timestamp / 1000.0
        batch.add(key, step, value, time)
    return batch


def _write(
    session: Session, run: Run, metrics: list[MetricIn], params: list[KeyValue], tags: list[KeyValue]
) -> None:
    """Validate everything, then store it; the request's transaction makes it all or nothing."""
    batch = _point_batch(metrics)
    # MLflow clients log asynchronously from several threads; holding the run's lock makes
    # concurrent batches of one run (the same step logged twice, say) apply one after another.
    # A batch with metrics adds its new keys, then takes the run's ingest lock, then its row:
    # the order every ingest keeps (docs/ARCHITECTURE.md, "An ingest").
    if metrics:
        MetricStore(session).key_ids(batch.names, create=True)
        lock_run_points(session, run.id)
    locked = TrackingStore(session).lock_run(run.id)
    if params or tags:
        change = ml.RunChange(locked)
        for param in params:
            change.add_param(param.key, param.value)
        for tag in tags:
            change.add_tag(tag.key, tag.value)
        RunStore(session).update(run.id, config=change.config or None, tags=change.tags, name=change.name)
    if metrics:
        MetricStore(session).ingest(run.id, batch)


# -- experiments ----------------------------------------------------------------------------


@router.post("/experiments/create")
def create_experiment(body: CreateExperiment, session: SessionDep, token: OptionalToken) -> dict[str, str]:
    if token is None:
        raise NotAuthenticated("authorization: creating an experiment needs an admin token")
    if token.scope != Scope.ADMIN:
        raise Forbidden(
            "authorization: creating an experiment creates a ParityScope project and needs an admin "
            "token; with a project token, name the token's project (its name or slug) or use the "
            "default experiment"
        )
    name = body.name.strip()
    if not name or len(body.name) > 200 or "\x00" in name:
        raise BadInput("name: an experiment name is 1-200 characters, no NUL", field="name")
    slug = ml.slug_for(name)
    if TrackingStore(session).projects_named({name, slug}):
        raise Conflict(f"Experiment '{name}' already exists.", field="name")
    project = ProjectStore(session).create(slug, name)
    return {"experiment_id": str(project.id)}


@router.get("/experiments/get")
def get_experiment(
    session: SessionDep,
    settings: SettingsDep,
    token: OptionalToken,
    experiment_id: Annotated[str, Query(max_length=20)],
) -> dict[str, Any]:
    project = _project_for(session, token, settings, experiment_id, write=False)
    return {"experiment": ml.experiment_json(project)}


@router.get("/experiments/get-by-name")
def get_experiment_by_name(
    session: SessionDep,
    settings: SettingsDep,
    token: OptionalToken,
    experiment_name: Annotated[str, Query(min_length=1, max_length=500)],
) -> dict[str, Any]:
    if token is None and not settings.reads_are_public:
        raise NotAuthenticated("authorization: a read token is required")
    visible = None
    if token is not None and token.scope != Scope.ADMIN and not settings.reads_are_public:
        visible = {token.project_id or -1}
    slug = ml.slug_for(experiment_name)
    found = TrackingStore(session).projects_named({experiment_name, slug}, visible)
    # An exact name first, then an exact slug, then the slug the name would become.
    found.sort(key=lambda p: (p.name != experiment_name, p.slug != experiment_name, p.id))
    if not found:
        raise NotFound(f"Could not find experiment with name '{experiment_name}'", field="experiment_name")
    return {"experiment": ml.experiment_json(found[0])}


# -- runs -----------------------------------------------------------------------------------


@router.post("/runs/create")
def create_run(body: CreateRun, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    if token is None:
        raise NotAuthenticated("authorization: a write token is required")
    project = _project_for(session, token, settings, body.experiment_id, write=True)
    tags = {t.key: t.value for t in body.tags}
    name = body.run_name or tags.get(ml.RUN_NAME_TAG) or f"mlflow-{secrets.token_hex(3)}"
    if len(name) > 500:
        raise BadInput("run_name: a run name is at most 500 characters", field="run_name")
    tags[ml.RUN_NAME_TAG] = name
    if body.user_id and ml.USER_TAG not in tags:
        tags[ml.USER_TAG] = body.user_id
    runs = RunStore(session)
    run, _ = runs.create(project.id, name=name, config={}, tags=[])
    change = ml.RunChange(run)
    for key, value in tags.items():
        change.add_tag(key, value)
    run = runs.update(run.id, config=change.config, tags=change.tags, name=change.name)
    return {"run": ml.run_json(run, [])}


@router.get("/runs/get")
def get_run(
    session: SessionDep,
    settings: SettingsDep,
    token: OptionalToken,
    run_id: Annotated[str | None, Query(max_length=100)] = None,
    run_uuid: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    run = _run_for(session, token, settings, RunRef(run_id=run_id, run_uuid=run_uuid).ref, write=False)
    latest = TrackingStore(session).latest_values([run.id])[run.id]
    return {"run": ml.run_json(run, latest)}


@router.post("/runs/update")
def update_run(body: UpdateRun, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    run = _run_for(session, token, settings, body.ref, write=True)
    status = None if body.status is None else ml.status_from_mlflow(body.status)
    if body.run_name is not None and not 0 < len(body.run_name) <= 500:
        raise BadInput("run_name: a run name is 1-500 characters", field="run_name")
    TrackingStore(session).lock_run(run.id)
    updated = RunStore(session).update(run.id, status=status, name=body.run_name or None)
    return {"run_info": ml.run_info_json(updated)}


@router.post("/runs/search")
def search_runs(body: SearchRuns, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    if not 1 <= body.max_results <= MAX_SEARCH_RESULTS:
        raise BadInput(
            f"max_results: Invalid value {body.max_results} for parameter 'max_results' supplied. "
            f"It must be between 1 and {MAX_SEARCH_RESULTS}",
            field="max_results",
        )
    clauses = parse_filter(body.filter)
    order = parse_order_by(body.order_by)
    offset = _page_start(body.page_token)
    projects = [_project_for(session, token, settings, e, write=False) for e in body.experiment_ids]
    view_type = (body.run_view_type or "ACTIVE_ONLY").upper()
    if view_type not in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        raise BadInput(f"run_view_type: {body.run_view_type!r} is not ACTIVE_ONLY, DELETED_ONLY or ALL",
                       field="run_view_type")
    store = TrackingStore(session)
    runs = RunStore(session).get_many(store.run_ids(sorted({p.id for p in projects})))
    if view_type != "ALL":
        runs = [r for r in runs if (r.deleted_at is not None) == (view_type == "DELETED_ONLY")]
    latest = store.latest_values([r.id for r in runs])
    by_id = {r.id: r for r in runs}
    views = []
    for run in runs:
        info = ml.run_info_json(run)
        attributes = {k: info.get(k) for k in ("status", "run_name", "run_id", "user_id", "start_time", "end_time")}
        views.append(
            RunView(
                attributes=attributes,
                params=ml.run_params(run),
                tags=ml.run_tags(run),
                metrics={p.key: p.value for p in latest[run.id]},
            )
        )
    selected = sort_runs([v for v in views if matches(clauses, v)], order)
    page = selected[offset : offset + body.max_results]
    response: dict[str, Any] = {
        "runs": [ml.run_json(by_id[int(v.attributes["run_id"])], latest[int(v.attributes["run_id"])]) for v in page]
    }
    if offset + body.max_results < len(selected):
        response["next_page_token"] = str(offset + body.max_results)
    return response


# -- logging --------------------------------------------------------------------------------


@router.post("/runs/log-batch")
def log_batch(body: LogBatch, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    counts = {"metrics": len(body.metrics), "params": len(body.params), "tags": len(body.tags)}
    limits = {
        "metrics": ml.MAX_METRICS_PER_BATCH,
        "params": ml.MAX_PARAMS_TAGS_PER_BATCH,
        "tags": ml.MAX_PARAMS_TAGS_PER_BATCH,
    }
    for kind, count in counts.items():
        if count > limits[kind]:
            raise BadInput(
                f"A batch logging request can contain at most {limits[kind]} {kind}. Got {count} "
                f"{kind}. Please split up {kind} across multiple requests and try again.",
                field=kind,
            )
    total = sum(counts.values())
    if total > ml.MAX_ENTITIES_PER_BATCH:
        raise BadInput(
            f"A batch logging request can contain at most {ml.MAX_ENTITIES_PER_BATCH} total "
            f"metrics, params and tags. Got {total}.",
            field="metrics",
        )
    run = _run_for(session, token, settings, body.ref, write=True)
    _write(session, run, body.metrics, body.params, body.tags)
    return {}


@router.post("/runs/log-metric")
def log_metric(body: LogMetric, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    run = _run_for(session, token, settings, body.ref, write=True)
    metric = MetricIn(key=body.key, value=body.value, timestamp=body.timestamp, step=body.step)
    _write(session, run, [metric], [], [])
    return {}


@router.post("/runs/log-parameter")
def log_parameter(body: LogParam, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    run = _run_for(session, token, settings, body.ref, write=True)
    _write(session, run, [], [KeyValue(key=body.key, value=body.value)], [])
    return {}


@router.post("/runs/set-tag")
def set_tag(body: SetTag, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    run = _run_for(session, token, settings, body.ref, write=True)
    _write(session, run, [], [], [KeyValue(key=body.key, value=body.value)])
    return {}


@router.get("/metrics/get-history")
def get_metric_history(
    session: SessionDep,
    settings: SettingsDep,
    token: OptionalToken,
    metric_key: Annotated[str, Query(min_length=1, max_length=MAX_KEY_LENGTH)],
    run_id: Annotated[str | None, Query(max_length=100)] = None,
    run_uuid: Annotated[str | None, Query(max_length=100)] = None,
    max_results: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    page_token: Annotated[str | None, Query(max_length=40, json_schema_extra=_PAGE_TOKEN)] = None,
) -> dict[str, Any]:
    run = _run_for(session, token, settings, RunRef(run_id=run_id, run_uuid=run_uuid).ref, write=False)
    points = TrackingStore(session).history(
        run.id, metric_key, from_step=_page_start(page_token), limit=max_results
    )
    response: dict[str, Any] = {"metrics": [ml.metric_json(p) for p in points]}
    if max_results is not None and len(points) == max_results:
        response["next_page_token"] = str(points[-1].step + 1)
    return response


# -- run lifecycle, tags, inputs -------------------------------------------------------------


def _mark_deleted(session: Session, token: Token | None, settings: Settings, ref: str, deleted: bool) -> dict[str, Any]:
    run = _run_for(session, token, settings, ref, write=True)
    TrackingStore(session).lock_run(run.id)
    RunStore(session).update(run.id, deleted=deleted)
    return {}


@router.post("/runs/delete")
def delete_run(body: RunRef, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    """The run leaves the dashboard's lists and MLflow's searches; its data is kept."""
    return _mark_deleted(session, token, settings, body.ref, deleted=True)


@router.post("/runs/restore")
def restore_run(body: RunRef, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    return _mark_deleted(session, token, settings, body.ref, deleted=False)


@router.post("/runs/delete-tag")
def delete_tag(body: DeleteTag, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    run = _run_for(session, token, settings, body.ref, write=True)
    locked = TrackingStore(session).lock_run(run.id)
    if body.key not in ml.run_tags(locked) or body.key == ml.RUN_NAME_TAG:
        raise NotFound(f"No tag with name: {body.key} in run with id {run.id}", field="key")
    config, tags = ml.without_tag(locked, body.key)
    RunStore(session).update(run.id, config=config, replace_config=True, tags=tags)
    return {}


@router.post("/runs/log-inputs")
def log_inputs(body: LogInputs, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    run = _run_for(session, token, settings, body.ref, write=True)
    locked = TrackingStore(session).lock_run(run.id)
    datasets = [
        {"tags": [t.model_dump() for t in d.tags], "dataset": d.dataset.model_dump(by_alias=True, exclude_none=True)}
        for d in body.datasets
    ]
    models = [{"model_id": m.model_id} for m in body.models]
    config = ml.with_inputs(locked, datasets, models)
    if config is not None:
        RunStore(session).update(run.id, config=config)
    return {}


@router.post("/runs/outputs")
def log_outputs(body: LogOutputs, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    run = _run_for(session, token, settings, body.ref, write=True)
    models = LoggedModelStore(session)
    for output in body.models:
        model = _model_for(session, token, settings, output.model_id, write=True)
        details = dict(model.details, output_step=output.step)
        models.update(model.id, details=details)
        if model.run_id is None:
            models.set_run(model.id, run.id)
    return {}


# -- experiments search -------------------------------------------------------------------


@router.get("/experiments/search")
def search_experiments_by_query(
    request: Request, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> dict[str, Any]:
    query: dict[str, Any] = dict(request.query_params)
    query["order_by"] = request.query_params.getlist("order_by")
    try:
        body = SearchExperiments.model_validate(query)
    except ValueError as exc:
        raise BadInput(f"query: {exc}", field="query") from None
    return _search_experiments(body, session, settings, token)


@router.post("/experiments/search")
def search_experiments(
    body: SearchExperiments, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> dict[str, Any]:
    return _search_experiments(body, session, settings, token)


def _search_experiments(
    body: SearchExperiments, session: Session, settings: Settings, token: Token | None
) -> dict[str, Any]:
    if not 1 <= body.max_results <= MAX_SEARCH_RESULTS:
        raise BadInput(f"max_results: must be between 1 and {MAX_SEARCH_RESULTS}", field="max_results")
    if token is None and not settings.reads_are_public:
        raise NotAuthenticated("authorization: a read token is required")
    clauses = parse_filter(body.filter, EXPERIMENT_TEXT_ATTRIBUTES, EXPERIMENT_NUMBER_ATTRIBUTES)
    order = parse_order_by(body.order_by, EXPERIMENT_TEXT_ATTRIBUTES | EXPERIMENT_NUMBER_ATTRIBUTES)
    offset = _page_start(body.page_token)
    if (body.view_type or "ACTIVE_ONLY").upper() == "DELETED_ONLY":
        return {"experiments": []}  # projects are never deleted through MLflow
    visible = None
    if token is not None and token.scope != Scope.ADMIN and not settings.reads_are_public:
        visible = {token.project_id or -1}
    projects = ProjectStore(session).list(visible)
    views = []
    for project in projects:
        experiment = ml.experiment_json(project)
        views.append(RunView(
            attributes={k: experiment[k] for k in ("name", "experiment_id", "creation_time", "last_update_time")},
            tags={t["key"]: t["value"] for t in experiment["tags"]},
        ))
    by_id = {str(p.id): p for p in projects}
    selected = sort_runs([v for v in views if matches(clauses, v)], order, default="experiment_id")
    page = selected[offset : offset + body.max_results]
    response: dict[str, Any] = {"experiments": [ml.experiment_json(by_id[v.attributes["experiment_id"]]) for v in page]}
    if offset + body.max_results < len(selected):
        response["next_page_token"] = str(offset + body.max_results)
    return response


# -- logged models (what mlflow.<flavor>.log_model calls) ------------------------------------


def _model_for(session: Session, token: Token | None, settings: Settings, model_id: str, *, write: bool):  # type: ignore[no-untyped-def]
    model = LoggedModelStore(session).get(model_id[:64])
    _check_access(token, settings, model.project_id, write=write)
    return model


_MODEL_STATUSES = {"LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED",
                   "LOGGED_MODEL_STATUS_UNSPECIFIED"}


@router.post("/logged-models")
def create_logged_model(
    body: CreateLoggedModel, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> dict[str, Any]:
    if token is None:
        raise NotAuthenticated("authorization: a write token is required")
    project = _project_for(session, token, settings, body.experiment_id, write=True)
    run_id = None
    if body.source_run_id:
        run = _run_for(session, token, settings, body.source_run_id, write=True)
        if run.project_id != project.id:
            raise BadInput("source_run_id: the run belongs to another experiment", field="source_run_id")
        run_id = run.id
    name = body.name or f"model-{secrets.token_hex(3)}"
    if len(name) > 500:
        raise BadInput("name: a model name is at most 500 characters", field="name")
    details = ml.model_details(body.model_type, body.params, body.tags, {}, [])
    model = LoggedModelStore(session).create(project.id, run_id, name, "LOGGED_MODEL_PENDING", details)
    return {"model": ml.logged_model_json(model)}


@router.get("/logged-models/{model_id}")
def get_logged_model(model_id: str, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> dict[str, Any]:
    return {"model": ml.logged_model_json(_model_for(session, token, settings, model_id, write=False))}


@router.patch("/logged-models/{model_id}")
def finalize_logged_model(
    model_id: str, body: FinalizeLoggedModel, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> dict[str, Any]:
    model = _model_for(session, token, settings, model_id, write=True)
    if body.status not in _MODEL_STATUSES:
        raise BadInput(f"status: {body.status!r} is not one of {', '.join(sorted(_MODEL_STATUSES))}", field="status")
    return {"model": ml.logged_model_json(LoggedModelStore(session).update(model.id, status=body.status))}


@router.patch("/logged-models/{model_id}/tags")
def set_logged_model_tags(
    model_id: str, body: LoggedModelTags, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> dict[str, Any]:
    model = _model_for(session, token, settings, model_id, write=True)
    details = ml.model_details(None, [], body.tags, model.details, [])
    LoggedModelStore(session).update(model.id, details=details)
    return {}


@router.delete("/logged-models/{model_id}/tags/{key}")
def delete_logged_model_tag(
    model_id: str, key: str, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> dict[str, Any]:
    model = _model_for(session, token, settings, model_id, write=True)
    if key not in model.details.get("tags", {}):
        raise NotFound(f"No tag with key {key!r} on logged model {model_id}", field="key")
    LoggedModelStore(session).update(model.id, details=ml.model_details(None, [], [], model.details, [key]))
    return {}


@router.post("/logged-models/{model_id}/params")
def log_logged_model_params(
    model_id: str, body: LoggedModelParams, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> dict[str, Any]:
    model = _model_for(session, token, settings, model_id, write=True)
    LoggedModelStore(session).update(model.id, details=ml.model_details(None, body.params, [], model.details, []))
    return {}


@router.post("/logged-models/search")
def search_logged_models(
    body: SearchLoggedModels, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> dict[str, Any]:
    projects = [_project_for(session, token, settings, e, write=False) for e in body.experiment_ids]
    models = LoggedModelStore(session).of_projects([p.id for p in projects])
    return {"models": [ml.logged_model_json(m) for m in models[: max(1, body.max_results)]]}


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
def unknown_endpoint(path: str, request: Request) -> None:
    raise EndpointNotFound(
        f"No API endpoint {request.method} {PREFIX}/{path}: ParityScope implements the tracking "
        "calls of experiments, runs, params, tags and metrics (see docs/API.md)"
    )

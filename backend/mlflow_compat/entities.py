"""Converting between MLflow's entities and ParityScope's.

The mapping (documented in docs/API.md, "MLflow-compatible tracking"):
- experiment ↔ project: ``experiment_id`` is the project id as a string, the name is the
  project's name; experiment ``"0"`` (MLflow's default) is the calling token's own project.
- run ↔ run: ``run_id`` is the run id as a string, ``run_name`` the run's name,
  ``start_time`` its creation, ``end_time`` its last update once it is no longer running.
- params ↔ top-level config keys. MLflow params are strings and cannot change once logged; a
  config value set through the core API reads back as its text (nested keys dotted).
- tags ↔ ``config["mlflow_tags"]``, kept exactly. A tag that is not a ``mlflow.*`` system tag
  is also put in the run's tag list as ``key:value`` (when that fits a tag's 100 characters), so
  the dashboard can filter on it; ``mlflow.runName`` is the run's name (and is not kept in the
  config).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from backend.domain import Project, Run, RunStatus
from backend.errors import BadInput
from backend.storage.artifacts import run_artifact_dir
from backend.storage.logged_models import LoggedModel, model_artifact_dir
from backend.storage.mlflow import LoggedValue
from parityscope.wire import MAX_KEY_LENGTH, encode_value

TAGS_KEY = "mlflow_tags"
INPUTS_KEY = "mlflow_inputs"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
SYSTEM_TAG_PREFIX = "mlflow."
DEFAULT_EXPERIMENT_ID = "0"
ARTIFACT_SCHEME = "mlflow-artifacts:"

# MLflow's own limits (mlflow/utils/validation.py).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_ENTITY_KEY_LENGTH = MAX_KEY_LENGTH  # MLflow allows 250 too; the key columns are that wide
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_LIST_TAG_LENGTH = 100

_TO_MLFLOW_STATUS = {
    RunStatus.RUNNING: "RUNNING",
    RunStatus.FINISHED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.KILLED: "KILLED",
}
_FROM_MLFLOW_STATUS = {
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.RUNNING,
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.KILLED,
}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def millis(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def status_from_mlflow(status: str, where: str = "status") -> RunStatus:
    try:
        return _FROM_MLFLOW_STATUS[status]
    except KeyError:
        choices = ", ".join(_FROM_MLFLOW_STATUS)
        raise BadInput(f"{where}: {status!r} is not one of {choices}", field=where) from None


def status_to_mlflow(status: RunStatus) -> str:
    return _TO_MLFLOW_STATUS[status]


def slug_for(name: str) -> str:
    """The project slug an experiment name becomes: lowercase, other characters as ``-``."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:64].strip("-_")
    return slug or "experiment"


def metric_value(raw: Any, where: str) -> float:
    """A metric value as MLflow clients send it: a number, a JSON ``NaN``/``Infinity`` literal
    (already a float here), or protobuf's JSON strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    if isinstance(raw, bool) or raw is None:
        raise BadInput(f"{where}: expected a number, got {json.dumps(raw)}", field=where)
    if isinstance(raw, int | float):
        try:
            return float(raw)
        except OverflowError:  # a JSON integer beyond float64
            raise BadInput(f"{where}: number out of range", field=where) from None
    if isinstance(raw, str):
        if raw in _NON_FINITE:
            return _NON_FINITE[raw]
        try:
            return float(raw)
        except ValueError:
            pass
    raise BadInput(f"{where}: expected a number, got {str(raw)[:40]!r}", field=where)


def check_entity_key(key: str, kind: str) -> str:
    if not key:
        raise BadInput(f"{kind} key: must not be empty", field="key")
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        raise BadInput(
            f"{kind} key '{key[:40]}...': {len(key)} characters, the limit is {MAX_ENTITY_KEY_LENGTH}",
            field="key",
        )
    if not key.isprintable():
        raise BadInput(f"{kind} key {key[:40]!r}: contains non-printable characters", field="key")
    return key


# -- reading ---------------------------------------------------------------------------------


def experiment_artifact_location(project_id: int) -> str:
    """Served by the artifact proxy (``backend.api.routes.mlflow_artifacts``)."""
    return f"{ARTIFACT_SCHEME}/{project_id}"


def run_artifact_uri(run: Run) -> str:
    return f"{experiment_artifact_location(run.project_id)}/{run_artifact_dir(run.project_id, run.id).split('/', 1)[1]}"


def experiment_json(project: Project) -> dict[str, Any]:
    created = millis(project.created_at)
    return {
        "experiment_id": str(project.id),
        "name": project.name,
        "artifact_location": experiment_artifact_location(project.id),
        "lifecycle_stage": "active",
        "creation_time": created,
        "last_update_time": created,
        "tags": [{"key": "parityscope.slug", "value": project.slug}],
    }


def param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def run_params(run: Run) -> dict[str, str]:
    """The run's config as MLflow params: top-level keys, nested ones dotted, values as text."""
    params: dict[str, str] = {}

    def walk(mapping: Mapping[str, Any], prefix: str) -> None:
        for key, value in mapping.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                walk(value, path + ".")
            else:
                params[path] = param_text(value)

    walk({k: v for k, v in run.config.items() if k not in (TAGS_KEY, INPUTS_KEY)}, "")
    return params


def run_tags(run: Run) -> dict[str, str]:
    stored = run.config.get(TAGS_KEY)
    tags = {str(k): str(v) for k, v in stored.items()} if isinstance(stored, Mapping) else {}
    tags[RUN_NAME_TAG] = run.name
    return tags


def end_time(run: Run) -> int | None:
    return None if run.status == RunStatus.RUNNING else millis(run.updated_at)


def metric_json(point: LoggedValue) -> dict[str, Any]:
    return {
        "key": point.key,
        "value": encode_value(point.value),
        "timestamp": 0 if point.wall_time is None else int(round(point.wall_time * 1000)),
        "step": point.step,
    }


def run_info_json(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": str(run.id),
        "run_uuid": str(run.id),
        "run_name": run.name,
        "experiment_id": str(run.project_id),
        "user_id": run_tags(run).get(USER_TAG, ""),
        "status": status_to_mlflow(run.status),
        "start_time": millis(run.created_at),
        "artifact_uri": run_artifact_uri(run),
        "lifecycle_stage": "deleted" if run.deleted_at is not None else "active",
    }
    finished = end_time(run)
    if finished is not None:
        info["end_time"] = finished
    return info


def run_json(run: Run, latest: list[LoggedValue]) -> dict[str, Any]:
    return {
        "info": run_info_json(run),
        "data": {
            "metrics": [metric_json(p) for p in latest],
            "params": [{"key": k, "value": v} for k, v in run_params(run).items()],
            "tags": [{"key": k, "value": v} for k, v in run_tags(run).items()],
        },
        "inputs": run_inputs(run),
    }


def run_inputs(run: Run) -> dict[str, Any]:
    stored = run.config.get(INPUTS_KEY)
    if not isinstance(stored, Mapping):
        return {}
    inputs: dict[str, Any] = {}
    if stored.get("datasets"):
        inputs["dataset_inputs"] = list(stored["datasets"])
    if stored.get("models"):
        inputs["model_inputs"] = list(stored["models"])
    return inputs


def with_inputs(run: Run, datasets: list[dict[str, Any]], models: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The config patch that adds these inputs (a dataset already logged, by name and digest,
    is not added twice, as in MLflow); None when nothing is new."""
    stored = run.config.get(INPUTS_KEY)
    stored = dict(stored) if isinstance(stored, Mapping) else {}
    known_datasets = list(stored.get("datasets") or [])
    seen = {(d["dataset"].get("name"), d["dataset"].get("digest")) for d in known_datasets}
    added = False
    for item in datasets:
        identity = (item["dataset"].get("name"), item["dataset"].get("digest"))
        if identity not in seen:
            seen.add(identity)
            known_datasets.append(item)
            added = True
    known_models = list(stored.get("models") or [])
    for model in models:
        if model not in known_models:
            known_models.append(model)
            added = True
    if not added:
        return None
    return {INPUTS_KEY: {"datasets": known_datasets, "models": known_models}}


def without_tag(run: Run, key: str) -> tuple[dict[str, Any], list[str]]:
    """The run's whole config and tag list once tag ``key`` is deleted."""
    config = dict(run.config)
    tags = {k: v for k, v in dict(config.get(TAGS_KEY) or {}).items() if k != key}
    if tags:
        config[TAGS_KEY] = tags
    else:
        config.pop(TAGS_KEY, None)
    kept = [t for t in run.tags if not (t == key or t.startswith(f"{key}:"))]
    return config, kept


# -- logged models ---------------------------------------------------------------------------


def model_details(
    model_type: str | None, params: list[Any], tags: list[Any], earlier: Mapping[str, Any], removed: list[str]
) -> dict[str, Any]:
    """A logged model's details with ``params`` and ``tags`` (key/value bodies) set and the tags
    in ``removed`` deleted. Params, as for runs, cannot change once logged."""
    details = dict(earlier)
    if model_type is not None:
        details["model_type"] = model_type
    stored_params = dict(details.get("params") or {})
    for param in params:
        check_entity_key(param.key, "param")
        if param.key in stored_params and stored_params[param.key] != param.value:
            raise BadInput(f"param {param.key!r}: already logged with another value", field="params")
        stored_params[param.key] = param.value
    stored_tags = dict(details.get("tags") or {})
    for tag in tags:
        check_entity_key(tag.key, "tag")
        if len(tag.value) > MAX_TAG_VAL_LENGTH:
            raise BadInput(f"tag {tag.key!r}: value longer than {MAX_TAG_VAL_LENGTH} characters", field="tags")
        stored_tags[tag.key] = tag.value
    for key in removed:
        stored_tags.pop(key, None)
    details["params"] = stored_params
    details["tags"] = stored_tags
    return details


def logged_model_json(model: LoggedModel) -> dict[str, Any]:
    details = model.details
    return {
        "info": {
            "model_id": model.id,
            "experiment_id": str(model.project_id),
            "name": model.name,
            "creation_timestamp_ms": millis(model.created_at),
            "last_updated_timestamp_ms": millis(model.updated_at),
            "artifact_uri": f"{ARTIFACT_SCHEME}/{model_artifact_dir(model.project_id, model.id)}",
            "status": model.status,
            "model_type": details.get("model_type") or "",
            "source_run_id": "" if model.run_id is None else str(model.run_id),
            "tags": [{"key": k, "value": v} for k, v in (details.get("tags") or {}).items()],
        },
        "data": {
            "params": [{"key": k, "value": v} for k, v in (details.get("params") or {}).items()],
            "metrics": [],
        },
    }


# -- writing ---------------------------------------------------------------------------------


class RunChange:
    """What a batch of MLflow params and tags does to one run, validated before anything is
    written: the config patch, the new tag list and the new name (None where unchanged)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.config: dict[str, Any] = {}
        self.tags: list[str] | None = None
        self.name: str | None = None
        self._params = run_params(run)

    def add_param(self, key: str, value: str) -> None:
        check_entity_key(key, "param")
        if key == TAGS_KEY:
            raise BadInput(f"param key {key!r}: reserved for the run's MLflow tags", field="key")
        if len(value) > MAX_PARAM_VAL_LENGTH:
            raise BadInput(
                f"param {key!r}: value of {len(value)} characters exceeds the limit of {MAX_PARAM_VAL_LENGTH}",
                field="value",
            )
        earlier = self.config.get(key, self._params.get(key))
        if earlier is not None and earlier != value:
            raise BadInput(
                f"Changing param values is not allowed. Param with key={key!r} was already logged "
                f"with value={earlier!r} for run ID={self.run.id!r}. Attempted logging new value {value!r}.",
                field="value",
            )
        if key not in self._params:
            self.config[key] = value

    def add_tag(self, key: str, value: str) -> None:
        check_entity_key(key, "tag")
        if len(value) > MAX_TAG_VAL_LENGTH:
            raise BadInput(
                f"tag {key!r}: value of {len(value)} characters exceeds the limit of {MAX_TAG_VAL_LENGTH}",
                field="value",
            )
        if key == RUN_NAME_TAG:
            # The run's name itself, not kept twice: in the config every pair of runs would
            # differ there, which the config diff would report.
            if not value or len(value) > 500:
                raise BadInput(f"tag {RUN_NAME_TAG}: a run name is 1-500 characters", field="value")
            self.name = value
            return
        self.config.setdefault(TAGS_KEY, {})[key] = value
        if not key.startswith(SYSTEM_TAG_PREFIX):
            self.tags = mirror_tag(self.run.tags if self.tags is None else self.tags, key, value)


def mirror_tag(tags: list[str], key: str, value: str) -> list[str]:
    """The run's tag list with ``key:value`` in place of an earlier value of the same key."""
    text = f"{key}:{value}" if value else key
    kept = [t for t in tags if not (t == key or t.startswith(f"{key}:"))]
    if len(text) <= MAX_LIST_TAG_LENGTH and text.isprintable() and len(kept) < 100:
        kept.append(text)
    return kept

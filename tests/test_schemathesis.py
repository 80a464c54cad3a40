"""Property-based checks of every documented operation against /openapi.json with schemathesis,
on SQLite and on PostgreSQL: no server error, status codes, content types, headers and bodies as
the schema declares them, bad data refused, and data the schema calls valid accepted
(``positive_data_acceptance``). Bounded in examples so it stays quick in CI.

Every check runs on every operation, with two narrow exceptions (docs/RELIABILITY.md, "Bad
inputs tried"):

- ``positive_data_acceptance`` is not run on the operations in ``UNDESCRIBABLE``, whose rules
  OpenAPI cannot state: a rule across two query parameters (MLflow's ``run_id`` or its alias
  ``run_uuid``), or a file body whose format is named by a query parameter and must parse as
  that format.
- On MLflow's endpoints a name already taken is answered as MLflow answers it,
  ``400 RESOURCE_ALREADY_EXISTS``; the check takes that answer for the conflict it is (the core
  API's ``409``, which the check accepts).

The checks run in a subprocess: a library loaded by other tests of the same process can switch
the CPU to flush subnormal floats to zero, and Hypothesis then refuses to generate floats.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAX_EXAMPLES = 8

_SEARCH_GRAMMAR = {
    "filter": "an expression in MLflow's search grammar",
    "order_by": "expressions in MLflow's search grammar",
}

# Rules OpenAPI cannot state, per operation: the fields a refusal of schema-valid data may name,
# and why. Any other refusal of schema-valid data, on these operations too, is a failure.
UNDESCRIBABLE: dict[str, dict[str, str]] = {
    "GET /api/v1/compare": {"candidates": "a run is a reference or a candidate, not both"},
    "GET /api/v1/shares": {"candidates": "a run is a reference or a candidate, not both"},
    "POST /api/v1/comparisons": {"candidates": "a run is a reference or a candidate, not both"},
    "POST /api/v1/shares": {
        "view": "a run is a reference or a candidate, not both",
        "view.x_range": "x_range is [low, high] with low < high",
    },
    "GET /api/v1/notes": {"runs": "a run id appears once in a comma-separated list"},
    "POST /api/v1/jobs": {"project": "with an admin token the body names the project; with a project token it may not"},
    "GET /api/2.0/mlflow/runs/get": {"run_id": "run_id or its alias run_uuid: one of two query parameters"},
    "GET /api/2.0/mlflow/metrics/get-history": {"run_id": "run_id or its alias run_uuid: one of two query parameters"},
    "POST /api/2.0/mlflow/runs/search": _SEARCH_GRAMMAR,
    "POST /api/2.0/mlflow/experiments/search": _SEARCH_GRAMMAR,
    "POST /api/v1/projects/{slug}/imports": {"file": "a file in the format the `format` query parameter names"},
}


def refused_fields(response: Any) -> set[str]:
    """The fields a 400 or 422 answer names (the core API's and MLflow's error bodies)."""
    if response.status_code not in (400, 422):
        return set()
    try:
        body = json.loads(response.content)
    except ValueError:
        return set()
    if not isinstance(body, dict):
        return set()
    if body.get("errors"):
        return {".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query")) for e in body["errors"]}
    if body.get("field"):
        return {str(body["field"])}
    text = str(body.get("detail") or body.get("message") or "")
    return {text.split(":", 1)[0]} if ":" in text else set()


def body_validator(spec: dict[str, Any], path: str, method: str) -> Any:
    """A validator of the operation's JSON body against its schema, or None without one."""
    import jsonschema_rs

    body = spec["paths"][path][method.lower()].get("requestBody", {}).get("content", {}).get("application/json")
    if body is None:
        return None
    return jsonschema_rs.Draft202012Validator({**body["schema"], "components": spec["components"]})


def mlflow_conflict(response: Any) -> bool:
    """MLflow's answer to a name already taken: 400 with RESOURCE_ALREADY_EXISTS."""
    if response.status_code != 400:
        return False
    try:
        return json.loads(response.content).get("error_code") == "RESOURCE_ALREADY_EXISTS"
    except (ValueError, AttributeError):
        return False


def check_every_operation(database_url: str) -> tuple[int, list[str]]:
    """Run schemathesis over every operation; returns how many there were and the failures."""
    import schemathesis
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, assume, given, settings
    from schemathesis.checks import positive_data_acceptance
    from schemathesis.core import NotSet

    from backend.app import create_app
    from backend.db import Database, make_engine
    from backend.settings import Settings
    from tests.conftest import make_project

    def positive_data_accepted(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
        """``positive_data_acceptance``, less the refusals ``UNDESCRIBABLE`` lists for the
        operation, with MLflow's spelling of a conflict read as one."""
        if case.operation.path.startswith("/api/2.0/mlflow/") and mlflow_conflict(response):
            return None
        forgiven = UNDESCRIBABLE.get(case.operation.label, {})
        fields = refused_fields(response)
        if fields and fields <= forgiven.keys():
            return None
        return positive_data_acceptance(ctx, response, case)

    app_settings = Settings(database_url=database_url, public_reads=False)
    database = Database(make_engine(app_settings.database_url))
    project = make_project(database)
    app = create_app(app_settings, database)
    with TestClient(app) as client:
        run = client.post(
            f"/api/v1/projects/{project.slug}/runs", json={"name": "r", "config": {"a": 1}}, headers=project.auth()
        ).json()
        client.post(
            f"/api/v1/runs/{run['id']}/metrics",
            json={"steps": [0, 1, 2], "values": {"reward": [0.1, 0.2, 0.3]}},
            headers=project.auth(),
        )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    spec = app.openapi()
    failures: list[str] = []
    operations = 0

    def check_operation(operation: Any) -> None:
        valid_body = body_validator(spec, operation.path, operation.method)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            # Schemathesis reads a pattern's Unicode classes coarsely (\p{C} as the ASCII controls):
            # a valid-data case it drew that the schema refuses is not valid data; draw another.
            if valid_body is not None and case.meta is not None and case.meta.generation.mode.is_positive:
                assume(not isinstance(case.body, NotSet) and valid_body.is_valid(case.body))
            case.call_and_validate(
                headers=project.auth("admin"),
                excluded_checks=[positive_data_acceptance],
                additional_checks=[positive_data_accepted],
            )

        check()

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            check_operation(operation)
        except BaseException as exc:  # noqa: BLE001 - every operation's failure is reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    database.engine.dispose()
    return operations, failures


def test_every_operation_conforms(database_url: str) -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, __file__, database_url], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
    assert "operations checked" in done.stdout


if __name__ == "__main__":
    count, found = check_every_operation(sys.argv[1])
    print("\n\n".join(found))
    print(f"{count} operations checked, {len(found)} with failures")
    sys.exit(1 if found or count < 30 else 0)

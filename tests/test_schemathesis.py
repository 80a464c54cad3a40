"""Property-based checks of every documented operation against /openapi.json with schemathesis:
no server error, status codes and response bodies as the schema declares them, bad data
refused. Runs in process on SQLite; bounded in examples so it stays quick in CI.

Every check runs except ``positive_data_acceptance``: the server refuses, with a 422 naming the
field, values the schema cannot express (a slug's pattern, runs of two projects in one
comparison, an MLflow run id that is not one), which that check counts as failures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from backend.app import create_app
from backend.db import Database, make_engine
from backend.settings import Settings
from tests.conftest import make_project

MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple]:
    import shutil

    path = tmp_path_factory.mktemp("schemathesis") / "api.db"
    shutil.copyfile(sqlite_template, path)
    settings_ = Settings(database_url=f"sqlite:///{path}", public_reads=False)
    database = Database(make_engine(settings_.database_url))
    project = make_project(database)
    app = create_app(settings_, database)
    with TestClient(app) as client:
        run = client.post(
            f"/api/v1/projects/{project.slug}/runs", json={"name": "r", "config": {"a": 1}}, headers=project.auth()
        ).json()
        client.post(
            f"/api/v1/runs/{run['id']}/metrics",
            json={"steps": [0, 1, 2], "values": {"reward": [0.1, 0.2, 0.3]}},
            headers=project.auth(),
        )
    yield app, project
    database.engine.dispose()


def test_every_operation_conforms(api_app: tuple) -> None:
    app, project = api_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=project.auth("admin"), excluded_checks=[positive_data_acceptance])

        try:
            check()
        except BaseException as exc:  # noqa: BLE001 - every operation's failure is reported below
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert operations > 30
    assert not failures, "\n\n".join(failures)

"""Property-based checks of every documented operation against /openapi.json with schemathesis:
no server error, status codes and response bodies as the schema declares them, bad data
refused. Runs in process on SQLite; bounded in examples so it stays quick in CI.

Every check runs except ``positive_data_acceptance``: the server refuses, with a 422 naming the
field, values the schema cannot express (a slug's pattern, runs of two projects in one
comparison, an MLflow run id that is not one), which that check counts as failures.

The checks run in a subprocess: a library loaded by other tests of the same process can switch
the CPU to flush subnormal floats to zero, and Hypothesis then refuses to generate floats.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_EXAMPLES = 8


def check_every_operation(database_path: str) -> tuple[int, list[str]]:
    """Run schemathesis over every operation; returns how many there were and the failures."""
    import schemathesis
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import positive_data_acceptance

    from backend.app import create_app
    from backend.db import Database, make_engine
    from backend.settings import Settings
    from tests.conftest import make_project

    app_settings = Settings(database_url=f"sqlite:///{database_path}", public_reads=False)
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
        except BaseException as exc:  # noqa: BLE001 - every operation's failure is reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    database.engine.dispose()
    return operations, failures


def test_every_operation_conforms(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "api.db"
    shutil.copyfile(sqlite_template, path)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, __file__, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
    assert "operations checked" in done.stdout


if __name__ == "__main__":
    count, found = check_every_operation(sys.argv[1])
    print("\n\n".join(found))
    print(f"{count} operations checked, {len(found)} with failures")
    sys.exit(1 if found or count < 30 else 0)

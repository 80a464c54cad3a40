"""A client generated from /openapi.json by a standard generator (openapi-python-client) writes
and reads through the live server; the schema declares the bearer scheme and readable ids."""

from __future__ import annotations

import collections
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ProjectFixture


def test_the_schema_declares_bearer_auth_and_readable_unique_operation_ids(live_server: str) -> None:
    schema = httpx.get(f"{live_server}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "a ParityScope token (pst_...)",
    }
    assert {"bearerAuth": []} in schema["security"]
    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert not [i for i, n in collections.Counter(ids).items() if n > 1]
    assert {"create_run", "get_run", "post_metrics", "mlflow_get_run", "mlflow_upload_artifact"} <= set(ids)
    assert all(len(i) <= 40 and i.replace("_", "").isalnum() for i in ids)


def test_a_generated_client_writes_and_reads(
    live_server: str, project: ProjectFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert generator, "openapi-python-client is in the dev extras"
    spec = tmp_path / "openapi.json"
    spec.write_bytes(httpx.get(f"{live_server}/openapi.json").content)
    out = tmp_path / "generated"
    result = subprocess.run([generator, "generate", "--path", str(spec), "--output-path", str(out), "--meta", "none"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    package = importlib.import_module("generated")
    runs_api = importlib.import_module("generated.api.runs")
    models = importlib.import_module("generated.models")
    client = package.AuthenticatedClient(base_url=live_server, token=project.write)

    create = importlib.import_module(f"{runs_api.__name__}.create_run")
    body = models.RunCreate(name="generated-client", tags=["openapi"])
    created = create.sync(slug=project.slug, client=client, body=body)
    assert created.name == "generated-client" and created.tags == ["openapi"]

    read = importlib.import_module(f"{runs_api.__name__}.get_run")
    fetched = read.sync(run_id=created.id, client=client)
    assert fetched.id == created.id and fetched.name == "generated-client"
    # The bearer token is what authorises it: without it the server refuses the write.
    anonymous = package.Client(base_url=live_server)
    response = create.sync_detailed(slug=project.slug, client=anonymous, body=body)
    assert response.status_code == 401

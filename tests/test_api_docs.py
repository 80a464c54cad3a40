"""docs/API.md and the OpenAPI schema describe the same endpoints."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

DOC = Path(__file__).resolve().parent.parent / "docs" / "API.md"
HEADING = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE) (/\S+)\s*$", re.MULTILINE)


def documented_endpoints() -> set[tuple[str, str]]:
    return {(m.group(1), m.group(2)) for m in HEADING.finditer(DOC.read_text())}


def test_every_endpoint_is_documented_and_every_documented_one_exists(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    served = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    documented = documented_endpoints()
    assert served - documented == set(), "served but not in docs/API.md"
    assert documented - served == set(), "in docs/API.md but not served"


def test_metrics_body_forms_are_in_the_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/v1/runs/{run_id}/metrics"]["post"]["requestBody"]
    refs = {s["$ref"].rsplit("/", 1)[-1] for s in body["content"]["application/json"]["schema"]["oneOf"]}
    assert refs == {"RowsBody", "ColumnsBody"}
    assert {"RowsBody", "ColumnsBody"} <= set(schema["components"]["schemas"])

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


def test_the_docs_page_is_served_from_here_with_no_inline_script(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "<script>" not in html and "https://" not in html and "//cdn" not in html
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        asset = client.get(src)
        assert asset.status_code == 200, src
        assert "default-src 'self'" in asset.headers["content-security-policy"]
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript")
    )
    # FastAPI's own CDN pages are off.
    assert client.get("/redoc").status_code == 404

"""The vendored Plotly.js bundle: pinned, served as an immutable file, and enough for every figure."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import plotly
from fastapi.testclient import TestClient

from backend.api.routes.pages import (
    PLOTLY_JS,
    PLOTLY_JS_SHA256,
    PLOTLY_JS_TRACES,
    PLOTLY_JS_VERSION,
    frontend_dir,
)
from tests.conftest import ProjectFixture
from tests.test_api_compare import demo_ids  # noqa: F401  (fixture)

VENDORED_URL = "/static/vendor/plotly-basic.min.js"


def _header_version(path: Path) -> str:
    match = re.search(rb"plotly\.js(?: \([^)]*\))? v(\d+\.\d+\.\d+)", path.read_bytes()[:400])
    assert match, f"no plotly.js version in the header of {path}"
    return match.group(1).decode()


def test_vendored_bundle_is_the_documented_one() -> None:
    assert hashlib.sha256(PLOTLY_JS.read_bytes()).hexdigest() == PLOTLY_JS_SHA256
    assert _header_version(PLOTLY_JS) == PLOTLY_JS_VERSION
    readme = (frontend_dir() / "vendor" / "README.md").read_text()
    assert PLOTLY_JS_SHA256 in readme and f"plotly.js v{PLOTLY_JS_VERSION}" in readme
    assert "MIT" in (frontend_dir() / "vendor" / "plotly-basic.LICENSE").read_text()


def test_vendored_bundle_matches_the_plotly_package() -> None:
    # The server builds figures with the plotly package; the browser draws them with the same
    # plotly.js release, so attributes never differ between the two.
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert _header_version(bundled) == PLOTLY_JS_VERSION


def test_pages_ask_for_the_bundle_by_release(client: TestClient) -> None:
    page = client.get("/compare").text
    assert f'href="{VENDORED_URL}?v={PLOTLY_JS_VERSION}"' in page
    served = client.get(VENDORED_URL, params={"v": PLOTLY_JS_VERSION}, headers={"Accept-Encoding": "gzip"})
    assert served.status_code == 200 and "immutable" in served.headers["cache-control"]
    assert served.headers["content-encoding"] == "gzip"
    assert served.content == PLOTLY_JS.read_bytes()  # the client decodes the gzip body
    raw = client.get(VENDORED_URL, headers={"Accept-Encoding": "identity"})
    assert raw.status_code == 200 and raw.headers["cache-control"] == "no-cache"
    assert len(raw.content) == PLOTLY_JS.stat().st_size
    assert len(gzip.compress(raw.content)) < 500_000
    stale = client.get(VENDORED_URL, headers={"If-None-Match": served.headers["etag"]})
    assert stale.status_code == 304
    assert client.get("/static/vendor/plotly.min.js").status_code == 404


def test_every_figure_uses_only_traces_the_bundle_has(
    client: TestClient, project: ProjectFixture, demo_ids  # noqa: F811
) -> None:
    r = client.get("/api/v1/compare", headers=project.auth("read"), params={
        "reference": f"{demo_ids['reference']},{demo_ids['reference-replica']}",
        "candidates": demo_ids["v1-initial"],
    })
    assert r.status_code == 200, r.text
    kinds = set()
    for figures in r.json()["figures"].values():
        for figure in figures.values():
            kinds |= {trace.get("type", "scatter") for trace in figure["data"]}
    assert kinds and kinds <= PLOTLY_JS_TRACES, kinds

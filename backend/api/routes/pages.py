"""The dashboard's pages and static files.

Pages are plain HTML files from ``frontend/``; everything they show comes from the REST API
through ``frontend/js/api.js``. Plotly.js is the plotly package's own bundled ``plotly.min.js``
(no CDN, no build step). Pages carry no data, so serving them needs no token: the API calls
they make are checked as usual, and a share page reads only through its share link.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import plotly
import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["PLOTLY_JS", "frontend_dir", "mount_static", "router"]


def frontend_dir() -> Path:
    """The frontend folder: bundled in a wheel, or the repository's own in a checkout."""
    bundled = Path(__file__).resolve().parents[2] / "_bundled" / "frontend"
    if bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parents[3] / "frontend"


PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

router = APIRouter(include_in_schema=False)

# Pages and modules are revalidated on every load (a 304 when unchanged), so a deploy takes
# effect at once.
_NO_CACHE = {"Cache-Control": "no-cache"}


# Pages ask for Plotly.js with the plotly release in its URL, so browsers may keep it for good
# (and keep its compiled code): a new release is a new URL.
_PLOTLY_SRC = "/static/vendor/plotly.min.js"
_PLOTLY_VERSIONED = f"{_PLOTLY_SRC}?v={plotly.__version__}"
_IMMUTABLE = "public, max-age=31536000, immutable"


@lru_cache(maxsize=8)
def _rendered(path: Path, mtime_ns: int) -> str:
    return path.read_text(encoding="utf-8").replace(f'"{_PLOTLY_SRC}"', f'"{_PLOTLY_VERSIONED}"')


def _page(name: str) -> HTMLResponse:
    path = frontend_dir() / name
    return HTMLResponse(_rendered(path, path.stat().st_mtime_ns), headers=_NO_CACHE)


@router.get("/")
def index_page() -> HTMLResponse:
    return _page("index.html")


@router.get("/projects/{slug}")
def runs_page(slug: str) -> HTMLResponse:
    return _page("runs.html")


@router.get("/projects/{slug}/")
def runs_page_slash(slug: str) -> RedirectResponse:
    return RedirectResponse(f"/projects/{slug}", status_code=308)


@router.get("/compare")
def compare_page() -> HTMLResponse:
    return _page("compare.html")


@router.get("/docs")
def api_docs_page() -> HTMLResponse:
    """Swagger UI over /openapi.json, served from the swagger-ui-bundle-v2 package."""
    return _page("docs.html")


@router.get("/s/{token}")
def share_page(token: str) -> HTMLResponse:
    return _page("compare.html")


@lru_cache(maxsize=1)
def _plotly_gzip() -> bytes:
    # Compressed once per process rather than by the gzip middleware on every cold load
    # (4.8 MB → about 1.4 MB).
    return gzip.compress(PLOTLY_JS.read_bytes(), compresslevel=6, mtime=0)


_PLOTLY_ETAG = f'"plotly-{plotly.__version__}"'


@router.get(_PLOTLY_SRC)
def plotly_js(request: Request, v: str | None = None) -> Response:
    """The plotly package's own ``plotly.min.js``; immutable when asked for by release."""
    headers = {
        "ETag": _PLOTLY_ETAG,
        "Vary": "Accept-Encoding",
        "Cache-Control": _IMMUTABLE if v == plotly.__version__ else "no-cache",
    }
    if request.headers.get("if-none-match") == _PLOTLY_ETAG:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(_plotly_gzip(), media_type="text/javascript", headers=headers)
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=headers)


class _RevalidatedStatic(StaticFiles):
    """Static files that browsers revalidate (ETag, 304) instead of keeping stale modules."""

    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def mount_static(app: FastAPI) -> None:
    """``/static/…`` from frontend/ (after the routes above, which serve Plotly.js), and Swagger
    UI's files from its package under ``/static/vendor/swagger-ui/`` (for /docs)."""
    app.mount(
        "/static/vendor/swagger-ui",
        _RevalidatedStatic(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger-ui",
    )
    app.mount("/static", _RevalidatedStatic(directory=frontend_dir()), name="static")

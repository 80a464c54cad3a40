"""The dashboard's pages and static files.

Pages are plain HTML files from ``frontend/``; everything they show comes from the REST API
through ``frontend/js/api.js``. Plotly.js is the plotly package's own bundled ``plotly.min.js``
(no CDN, no build step). Pages carry no data, so serving them needs no token: the API calls
they make are checked as usual, and a share page reads only through its share link.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
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


def _page(name: str) -> FileResponse:
    return FileResponse(frontend_dir() / name, media_type="text/html", headers=_NO_CACHE)


@router.get("/")
def index_page() -> FileResponse:
    return _page("index.html")


@router.get("/projects/{slug}")
def runs_page(slug: str) -> FileResponse:
    return _page("runs.html")


@router.get("/projects/{slug}/")
def runs_page_slash(slug: str) -> RedirectResponse:
    return RedirectResponse(f"/projects/{slug}", status_code=308)


@router.get("/compare")
def compare_page() -> FileResponse:
    return _page("compare.html")


@router.get("/s/{token}")
def share_page(token: str) -> FileResponse:
    return _page("compare.html")


class _RevalidatedStatic(StaticFiles):
    """Static files that browsers revalidate (ETag, 304) instead of keeping stale modules."""

    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


class _PlotlyOnly(_RevalidatedStatic):
    """The plotly package's data folder, of which only ``plotly.min.js`` is served."""

    async def get_response(self, path: str, scope):  # type: ignore[no-untyped-def]
        if path != PLOTLY_JS.name:
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def mount_static(app: FastAPI) -> None:
    """``/static/vendor/plotly.min.js`` from the plotly package, ``/static/…`` from frontend/."""
    app.mount("/static/vendor", _PlotlyOnly(directory=PLOTLY_JS.parent), name="vendor")
    app.mount("/static", _RevalidatedStatic(directory=frontend_dir()), name="static")

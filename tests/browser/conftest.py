"""Real headless Chromium against the app served over HTTP.

One SQLite database, one server and one browser for the whole browser session (the machine is
small); each test gets a fresh browser context (no cookies, no localStorage) and its own project,
so tests do not see each other's runs. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from backend.db import Database, make_engine, upgrade
from backend.settings import Settings
from tests.compare.synthetic_runs import demo_runs
from tests.conftest import LiveServer, ProjectFixture, make_project

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The wall time, in seconds since the epoch, of step 0 of seeded runs that log wall times.
WALL_T0 = 1_750_000_000.0
CHROMIUM = os.environ.get("PARITYSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# Records CSP violations and dialogs (an executed alert() would be one) in every page.
WATCH_SCRIPT = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))


@dataclass
class Server:
    url: str
    database: Database


@pytest.fixture(scope="session")
def browser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("browser") / "dashboard.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    database = Database(make_engine(url))
    artifacts = tmp_path_factory.mktemp("browser-artifacts")
    server = LiveServer(Settings(database_url=url, public_reads=True, artifact_root=str(artifacts)), database)
    server.start()
    yield Server(server.url, database)
    server.stop()
    database.engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is required in CI and is missing at {CHROMIUM}")
        pytest.skip("Chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):  # type: ignore[no-untyped-def]
    """Factory of pages, each in a fresh context (a fresh browser profile, as a new user)."""
    contexts = []

    def make(**options):  # type: ignore[no-untyped-def]
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True, **options)
        context.add_init_script(WATCH_SCRIPT)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.page_errors = []
        page.on("pageerror", lambda e: page.page_errors.append(str(e)))
        return page

    yield make
    try:
        for context in contexts:
            for page in context.pages:
                # No page may break its Content-Security-Policy or throw.
                assert page.evaluate("window.__cspViolations || []") == [], page.url
                assert page.page_errors == [], page.page_errors
    finally:
        for context in contexts:
            context.close()


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Seeder:
    """Posts runs and metrics to the live server the way a trainer would."""

    def __init__(self, url: str, project: ProjectFixture) -> None:
        self.url = url
        self.project = project
        self.http = httpx.Client(base_url=url, headers=project.auth(), timeout=30)

    def run(self, name: str, **body) -> int:  # type: ignore[no-untyped-def]
        r = self.http.post(f"/api/v1/projects/{self.project.slug}/runs", json={"name": name, **body})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def points(
        self, run_id: int, series: dict, start: int = 0, stop: int | None = None, seconds_per_step: float | None = None
    ) -> None:
        """Post ``series`` (every key on the same steps) in one request; with ``seconds_per_step``
        each step carries the wall time ``WALL_T0 + seconds_per_step · step``, else none (the
        server stamps them all with the time it received them)."""
        body: dict = {"steps": None, "values": {}}
        for key, (steps, values) in series.items():
            chosen = (steps >= start) & (steps < (stop if stop is not None else 2**62))
            body["steps"] = steps[chosen].tolist()
            body["values"][key] = values[chosen].tolist()
            if seconds_per_step is not None:
                body["times"] = (WALL_T0 + seconds_per_step * steps[chosen]).tolist()
        r = self.http.post(
            f"/api/v1/runs/{run_id}/metrics",
            content=orjson.dumps(body),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text

    def demo(
        self, stop: int | None = None, names: dict[str, str] | None = None,
        seconds_per_step: dict[str, float] | None = None,
    ) -> dict[str, int]:
        """The demo's four runs (two reference replicas, a broken and a fixed candidate); the
        runs named in ``seconds_per_step`` log wall times at that pace."""
        ids = {}
        for key, run in demo_runs().items():
            name = (names or {}).get(key, run.name)
            ids[key] = self.run(name, config=dict(run.config), engine=dict(run.engine), label=run.label,
                                tags=["gspo", "v0" if key.startswith("reference") else "v1"])
            self.points(ids[key], dict(run.series), stop=stop, seconds_per_step=(seconds_per_step or {}).get(key))
        return ids

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def seeded(browser_server: Server, request: pytest.FixtureRequest) -> Iterator[Seeder]:
    """A fresh project (named after the test) on the shared server, with a write token."""
    slug = request.node.name.replace("test_", "")[:40].replace("_", "-").lower()
    project = make_project(browser_server.database, slug)
    seeder = Seeder(browser_server.url, project)
    yield seeder
    seeder.close()

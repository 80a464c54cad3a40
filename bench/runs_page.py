"""The runs page of a project with 10,000 runs: the first page, sparklines included.

    .venv/bin/python bench/runs_page.py [--runs 10000] [--repeats 9]

Fills a fresh PostgreSQL database (PARITYSCOPE_BENCH_PG) with one project of --runs runs, each
logging `rl/reward` (which the `reward` sparkline resolves through the alias table) and a second
key: the newest 50 runs — the first page — 10,000 steps each, the others 200 steps. Then, against
`parityscope serve`:
- the request the runs page makes, `GET /api/v1/projects/{slug}/run-summaries?limit=50` (50 runs,
  a 48-point sparkline each), first after the server starts and then median of --repeats;
- the same with a name filter (`q=run-9`), which matches 1,111 of 10,000 runs;
- the page itself in headless Chromium: navigation start to 50 rows with their sparklines drawn.
Target: first page ≤ 300 ms, sparklines included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx
import psycopg
from harness import PG, drop_postgres, fresh_postgres, project_token, running_server
from playwright.sync_api import sync_playwright

from backend.domain import Scope

DATABASE = "ps_bench_runs_page"
CHROMIUM = os.environ.get("PARITYSCOPE_CHROMIUM", "/usr/bin/chromium")


def fill(raw_url: str, runs: int) -> None:
    with psycopg.connect(raw_url) as conn:
        project = conn.execute("SELECT id FROM project WHERE slug = 'bench'").fetchone()[0]
        keys = []
        for name in ("rl/reward", "entropy"):
            conn.execute("INSERT INTO metric_key (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
            keys.append(conn.execute("SELECT id FROM metric_key WHERE name = %s", (name,)).fetchone()[0])
        conn.execute(
            "INSERT INTO run (project_id, name, label, status, config, engine, tags, last_step, created_at, updated_at) "
            "SELECT %s, 'run-' || i, '', 'finished', '{\"seed\": 1}'::json, '{}'::json, '[\"bench\"]'::json, "
            "CASE WHEN i > %s - 50 THEN 9999 ELSE 199 END, now(), now() FROM generate_series(1, %s) i",
            (project, runs, runs))
        conn.execute(
            "INSERT INTO metric_point SELECT r.id, k, s, sin(s * 0.01 + r.id)::float4, s FROM "
            "(SELECT id, last_step FROM run WHERE project_id = %s) r, unnest(%s::int[]) k, "
            "generate_series(0, r.last_step) s", (project, keys))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def timed(http: httpx.Client, params: dict, repeats: int) -> tuple[float, float, int]:
    samples = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        response = http.get("/api/v1/projects/bench/run-summaries", params=params)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        body = response.json()
        assert all(len(run["sparkline"]["x"]) > 10 for run in body["runs"]), "every run has a sparkline"
    return samples[0], statistics.median(samples[1:]), len(body["runs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    url = fresh_postgres(DATABASE)
    token = project_token(url, "bench", Scope.READ)
    started = time.perf_counter()
    fill(f"{PG}/{DATABASE}", args.runs)
    print(f"filled {args.runs:,} runs in {time.perf_counter() - started:.0f} s", flush=True)
    with running_server(url) as base:
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            for label, params in (("first page", {"limit": 50}), ("first page, q=run-9", {"limit": 50, "q": "run-9"})):
                first, median, count = timed(http, params, args.repeats)
                print(f"  {label}: {count} runs with sparklines, first request {first:.0f} ms, "
                      f"median of {args.repeats} {median:.0f} ms", flush=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            drawn = []
            for _ in range(args.repeats):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(f"localStorage.setItem('parityscope.token', {token!r})")
                page = context.new_page()
                page.goto(f"{base}/projects/bench")
                page.wait_for_function("() => document.querySelectorAll('#rows svg.spark polyline').length >= 50",
                                       timeout=60000)
                drawn.append(page.evaluate("() => performance.now()"))
                context.close()
            browser.close()
        print(f"  runs page in Chromium, cold, navigation to 50 rows with sparklines: median {statistics.median(drawn):.0f} ms "
              f"{[round(d) for d in drawn]}")
    drop_postgres(DATABASE)


if __name__ == "__main__":
    main()

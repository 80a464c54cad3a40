"""Time in Chromium from navigation to all four compare panels drawn, next to a baseline.

    .venv/bin/python bench/page.py [--steps 100000] [--repeats 7]

Builds the same workload as bench/compare.py (3 runs × 4 metrics × --steps steps on a fresh
PostgreSQL database: a reference, a replica and a drifting candidate), starts
`parityscope serve`, and opens `/compare?reference=…&candidates=…` in headless Chromium. The
time is the page's own `parityscope:panels-drawn` performance mark (set when Plotly has drawn
the fourth panel), measured from navigation start, median over --repeats.

Each repeat uses a fresh browser context (a cold cache: the page, its modules and the 1.2 MB
plotly-basic.min.js are all fetched) and then navigates again in the same context (warm: the browser
revalidates its cached files). The baseline, measured the same way in the same run, is a blank
page that loads only the Plotly.js bundle from the same server: the floor any Plotly page pays.
The bundles alone, measured the same way in the same run: a blank page loading the partial
bundle and one loading the full `plotly.min.js` of the plotly package (what the pages served
before), both from one plain local HTTP server (uncompressed, loopback), so the two differ only
in the file.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import plotly
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compare import build  # noqa: E402
from harness import drop_postgres, fresh_postgres, running_server  # noqa: E402

DATABASE = "ps_bench_page"
CHROMIUM = os.environ.get("PARITYSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
BLANK_PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><title>blank</title>'
    '<script src="/static/vendor/plotly-basic.min.js"></script></head><body>'
    "<script>performance.mark('blank:plotly-ready')</script></body></html>"
)
BUNDLES = {"basic": ROOT / "frontend" / "vendor" / "plotly-basic.min.js",
           "full": Path(plotly.__file__).parent / "package_data" / "plotly.min.js"}
DRAWN = "performance.getEntriesByName('parityscope:panels-drawn')[0].startTime"
BLANK_READY = "performance.getEntriesByName('blank:plotly-ready')[0].startTime"


def measure(browser, base: str, token: str, compare_path: str, repeats: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    samples: dict[str, list[float]] = {
        name: [] for name in ("page cold", "page warm", "blank cold", "blank warm", "data cold", "data warm",
                              "plotly cold", "plotly warm", "compare request", "payload KiB")
    }
    for _ in range(repeats):
        for kind in ("blank", "page"):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(f"localStorage.setItem('parityscope.token', {token!r})")
            # The blank page is served by the browser itself; Plotly.js comes from the server.
            context.route(f"{base}/bench-blank", lambda route: route.fulfill(
                status=200, content_type="text/html", body=BLANK_PAGE))
            page = context.new_page()
            for warmth in ("cold", "warm"):
                if kind == "blank":
                    page.goto(f"{base}/bench-blank")
                    page.wait_for_function(f"() => {BLANK_READY} > 0")
                    samples[f"blank {warmth}"].append(page.evaluate(f"() => {BLANK_READY}"))
                else:
                    page.goto(f"{base}{compare_path}")
                    page.wait_for_selector("#panels[data-drawn='4']", timeout=60000)
                    samples[f"page {warmth}"].append(page.evaluate(f"() => {DRAWN}"))
                    marks = page.evaluate(
                        "() => Object.fromEntries(['data', 'plotly-ready'].map(m => "
                        "[m, (performance.getEntriesByName('parityscope:' + m)[0] || {}).startTime]))"
                    )
                    samples[f"data {warmth}"].append(marks["data"])
                    samples[f"plotly {warmth}"].append(marks["plotly-ready"] or 0.0)
                    if warmth == "cold":
                        request = page.evaluate(
                            "() => performance.getEntriesByType('resource')"
                            ".filter(e => e.name.includes('/api/v1/compare'))"
                            ".map(e => [e.responseEnd - e.requestStart, e.encodedBodySize])[0]"
                        )
                        samples["compare request"].append(request[0])
                        samples["payload KiB"].append(request[1] / 1024)
            context.close()
    return samples


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def measure_bundles(browser, repeats: int) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Blank pages loading each bundle from one plain HTTP server, cold then warm, alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in BUNDLES.items():
            shutil.copyfile(path, Path(tmp) / f"{name}.js")
            (Path(tmp) / f"{name}.html").write_text(BLANK_PAGE.replace("/static/vendor/plotly-basic.min.js", f"/{name}.js"))
        handler = functools.partial(_QuietHandler, directory=tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        samples: dict[str, list[float]] = {f"{n} {w}": [] for n in BUNDLES for w in ("cold", "warm")}
        try:
            for _ in range(repeats):
                for name in BUNDLES:
                    context = browser.new_context()
                    page = context.new_page()
                    for warmth in ("cold", "warm"):
                        page.goto(f"{base}/{name}.html")
                        page.wait_for_function(f"() => {BLANK_READY} > 0")
                        samples[f"{name} {warmth}"].append(page.evaluate(f"() => {BLANK_READY}"))
                    context.close()
        finally:
            server.shutdown()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    url = fresh_postgres(DATABASE)
    print(f"building 3 runs × 4 metrics × {args.steps:,} steps ...", flush=True)
    token, (ref, replica, candidate) = build(url, args.steps)
    compare_path = f"/compare?reference={ref},{replica}&candidates={candidate}"

    with running_server(url) as base:
        # The compare request alone, outside the browser, for the breakdown.
        with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
            # What the page asks for: the overlay figures.
            api_path = compare_path.replace("/compare?", "/api/v1/compare?") + "&include=overlay"
            alone = []
            for _ in range(args.repeats + 1):
                started = time.perf_counter()
                http.get(api_path).raise_for_status()
                alone.append((time.perf_counter() - started) * 1000)
            alone = alone[1:]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            measure(browser, base, token, compare_path, 1)  # warm-up: server caches, disk
            samples = measure(browser, base, token, compare_path, args.repeats)
            bundles = measure_bundles(browser, args.repeats)
            browser.close()
    drop_postgres(DATABASE)

    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"median of {args.repeats}, ms from navigation start")
    for name in ("page cold", "page warm", "blank cold", "blank warm"):
        values = ", ".join(f"{v:.0f}" for v in samples[name])
        print(f"  {name:<11} {median[name]:7.0f} ms   [{values}]")
    print(f"  compare request alone (httpx, no browser): {statistics.median(alone):.0f} ms")
    for warmth in ("cold", "warm"):
        print(f"  in the page, {warmth}: data in at {median['data ' + warmth]:.0f} ms, Plotly.js ready at "
              f"{median['plotly ' + warmth]:.0f} ms (0: already in the page's module cache)")
    print(f"  compare request (in the page) {median['compare request']:.0f} ms, "
          f"payload {median['payload KiB']:.0f} KiB as sent")
    print(f"all four panels drawn, cold: {median['page cold']:.0f} ms (target ≤ 1500 ms); "
          f"ratio to the blank Plotly page: {median['page cold'] / median['blank cold']:.2f} cold, "
          f"{median['page warm'] / median['blank warm']:.2f} warm")
    bundle = {name: statistics.median(values) for name, values in bundles.items()}
    for name in BUNDLES:
        print(f"  blank page, {name} bundle from a plain server: cold {bundle[name + ' cold']:.0f} ms, "
              f"warm {bundle[name + ' warm']:.0f} ms")
    print(f"basic bundle / full plotly.min.js: {bundle['basic cold'] / bundle['full cold']:.2f} cold, "
          f"{bundle['basic warm'] / bundle['full warm']:.2f} warm")


if __name__ == "__main__":
    main()

"""Screenshots of the dashboard for the README, taken from a running `parityscope demo`.

    parityscope demo --no-serve --database-url sqlite:///demo.db     # prints the comparison URL
    parityscope serve --database-url sqlite:///demo.db --port 8000 &
    .venv/bin/python docs/img/capture.py http://127.0.0.1:8000 '/compare?reference=1,2&candidates=3,4&ladder=2'

With ``ladder=`` in the path it also takes the parity ladder (docs/LADDER.md), from the page that
shows every rung's runs, with the closing rung's row clicked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def main() -> None:
    base, compare_path = sys.argv[1], sys.argv[2]
    chromium = os.environ.get("PARITYSCOPE_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1250}, device_scale_factor=1)
        page.goto(base + compare_path)
        page.wait_for_selector("#panels[data-drawn='4']")
        page.wait_for_timeout(300)
        page.screenshot(path=str(HERE / "compare.png"))
        # Sticky bars would cover the top of element screenshots.
        page.add_style_tag(content=".toolbar, header.top { position: static !important; }")
        page.locator(".columns").screenshot(path=str(HERE / "diagnosis.png"))
        if "ladder=" in compare_path:
            page.wait_for_selector("#ladder-table")
            every_rung = page.get_attribute("#ladder-open", "href")
            if every_rung:
                page.goto(base + every_rung)
                page.wait_for_selector("#panels[data-drawn='4']")
                page.wait_for_selector("#ladder-table")
            page.add_style_tag(content=".toolbar, header.top { position: static !important; }")
            page.click("#ladder-table tr.closing")
            page.wait_for_timeout(500)
            page.locator("#ladder-section").screenshot(path=str(HERE / "ladder.png"))
            page.locator("#panels").screenshot(path=str(HERE / "ladder-panels.png"))
        slug = page.evaluate("() => fetch('/api/v1/projects').then(r => r.json()).then(p => p[0].slug)")
        page.goto(f"{base}/projects/{slug}")
        page.wait_for_selector("#rows tr")
        page.screenshot(path=str(HERE / "runs.png"))
        browser.close()


if __name__ == "__main__":
    main()

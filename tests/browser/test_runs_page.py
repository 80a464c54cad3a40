"""The runs page in Chromium: columns, sparklines, filters, paging, and opening a comparison."""

from __future__ import annotations

from tests.browser.conftest import screenshot


def rows(page):  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all("#rows tr", "trs => trs.map(tr => tr.querySelector('.name').textContent)")


def test_lists_filters_pages_and_opens_a_comparison(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    finished = seeded.run("old-baseline", tags=["archive"], label="V0 baseline")
    seeded.http.patch(f"/api/v1/runs/{finished}", json={"status": "finished"}).raise_for_status()
    page = new_page()
    page.goto(f"{seeded.url}/projects/{seeded.project.slug}")
    page.wait_for_selector("#rows tr")
    assert rows(page) == ["old-baseline", "v1-fixed", "v1-initial", "reference-replica", "reference"]
    first = page.locator("#rows tr", has_text="v1-initial")
    cells = first.locator("td").all_inner_texts()
    assert cells[3] == "running" and "torch 0.1.0 · V1 candidate" in cells[4] and "gspo" in cells[5]
    assert cells[7] == "199"
    # The reward sparkline is drawn from the sampled series (48 points by default).
    points = first.locator("svg.spark polyline").get_attribute("points").split()
    assert len(points) == 48
    assert page.locator("#rows tr", has_text="old-baseline").locator("svg.spark").count() == 0
    screenshot(page, "runs-page")

    page.fill("#filter-q", "V1")  # matches the label too
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 2")
    assert rows(page) == ["v1-fixed", "v1-initial"]
    assert "q=V1" in page.url
    page.click("#filter-clear")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 5")
    page.click("#rows tr:has-text('reference-replica') .tag:has-text('v0')")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 2")
    assert rows(page) == ["reference-replica", "reference"]
    page.click("#filter-clear")
    page.select_option("#filter-status", "finished")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    assert rows(page) == ["old-baseline"]
    page.select_option("#filter-status", "")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 5")

    # Two reference replicas and two candidates, then Compare.
    assert page.is_disabled("#compare")
    for name, role in (("reference", "reference"), ("reference-replica", "reference"),
                       ("v1-initial", "candidate"), ("v1-fixed", "candidate")):
        page.locator("#rows tr", has=page.locator(f"td.name:text-is('{name}')")).locator(f"input.pick-{role}").check()
    assert "References (replicas)" in page.inner_text("#selection-text")
    page.click("#compare")
    page.wait_for_selector("#panels[data-drawn='4']")
    query = page.url.split("?", 1)[1]
    assert f"reference={ids['reference-replica']},{ids['reference']}" in query or f"reference={ids['reference']},{ids['reference-replica']}" in query
    assert str(ids["v1-initial"]) in query and str(ids["v1-fixed"]) in query


def test_paging_through_many_runs(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    for i in range(57):
        seeded.run(f"sweep-{i:03d}")
    page = new_page()
    page.goto(f"{seeded.url}/projects/{seeded.project.slug}")
    page.wait_for_selector("#rows tr")
    assert len(rows(page)) == 50 and rows(page)[0] == "sweep-056"
    assert page.inner_text("#range") == "runs 1–50" and page.is_disabled("#newer")
    # A selection survives paging.
    page.locator("#rows tr", has_text="sweep-056").locator("input.pick-reference").check()
    page.click("#older")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 7")
    assert rows(page)[-1] == "sweep-000" and page.inner_text("#range") == "runs 51–57"
    assert page.is_disabled("#older")
    page.click("#newer")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 50")
    assert page.locator("#rows tr", has_text="sweep-056").locator("input.pick-reference").is_checked()
    assert "sweep-056" in page.inner_text("#selection-text")

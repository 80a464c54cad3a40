"""Broken states of the compare page in Chromium: what is valid is drawn and each bad run or
metric is named with a link back; an impossible selection shows the API's own message; refused
pages offer no editing controls."""

from __future__ import annotations

from tests.browser.conftest import screenshot
from tests.browser.test_compare_page import use_token

EDITING = ("#share", "#note-add", "#smoothing", "#metric-add")


def test_unknown_runs_and_metrics_are_named_and_the_rest_is_drawn(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(stop=80)
    page = new_page()
    page.goto(
        f"{seeded.url}/compare?reference={ids['reference']},{ids['reference-replica']}"
        f"&candidates={ids['v1-initial']},999999&metrics=kl,no_such_metric,reward"
    )
    page.wait_for_selector("#panels[data-drawn='2']")
    assert page.eval_on_selector_all(".panel", "ps => ps.map(p => p.dataset.metric)") == ["kl", "reward"]
    # Both panels draw the band and the three valid runs.
    assert page.eval_on_selector_all(".panel .plot", "ps => ps.map(p => p.data.length)") == [6, 6]
    problems = page.eval_on_selector_all(
        "#problems li", "ls => ls.map(l => [l.dataset.kind, l.textContent, l.querySelector('a').getAttribute('href')])"
    )
    runs_page = f"/projects/{seeded.project.slug}"
    assert problems == [
        ["run", "run 999999 not found — back to the runs page", runs_page],
        ["metric", "unknown metric 'no_such_metric': no run has it — back to the runs page", runs_page],
    ]
    assert page.locator(".run-chip").count() == 3
    # Viewing controls stay; editing ones wait for a write token.
    assert page.is_visible("#smoothing") and page.is_hidden("#share")
    screenshot(page, "compare-partial")
    # A link made here shows what is drawn: the runs and metrics the server found.
    use_token(page, seeded.project.write)
    page.click("#share")
    page.wait_for_selector("#share-url")
    link = seeded.http.get(
        "/api/v1/shares", params={"reference": f"{ids['reference']},{ids['reference-replica']}", "candidates": ids["v1-initial"]}
    ).json()
    assert len(link) == 1 and link[0]["view"]["metrics"] == ["kl", "reward"]
    page.click("#problems a >> nth=0")
    page.wait_for_url(f"{seeded.url}{runs_page}")


def test_an_impossible_selection_shows_the_apis_message(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(stop=30)
    run = ids["reference"]
    page = new_page()
    page.goto(f"{seeded.url}/compare?reference={run}&candidates={run}")
    page.wait_for_selector("#status.error")
    assert page.inner_text("#status") == f"candidates: run {run} is also a reference — pick runs on a project’s runs page"
    assert page.get_attribute("#status a", "href") == "/"
    assert page.locator(".panel").count() == 0
    for control in EDITING:
        assert page.is_hidden(control), control
    screenshot(page, "compare-impossible")


def test_an_unknown_reference_is_refused_without_controls(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    page.goto(f"{seeded.url}/compare?reference=999999&candidates=999998")
    page.wait_for_selector("#status.error")
    assert "run 999999 not found" in page.inner_text("#status")
    for control in EDITING:
        assert page.is_hidden(control), control

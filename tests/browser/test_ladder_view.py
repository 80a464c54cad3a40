"""The parity ladder on the compare page in Chromium: rows and cells, the closing rung and the
patch, a row click overlaying its runs, the Bisect button, and a frozen share link."""

from __future__ import annotations

from tests.browser.conftest import screenshot
from tests.browser.test_compare_page import panel_info, use_token
from tests.browser.test_share_links import make_link
from tests.compare.synthetic_runs import demo_runs
from tests.tiny_job import TINY_WORKLOAD

# Which synthetic run stands for each leg: rung 0 (raw logprobs) diverges like v1-initial,
# rung 1 (the reference's settings) is at parity like v1-fixed.
SERIES_OF = {"reference": "reference", "reference-replica": "reference-replica",
             "v1 rung-0": "v1-initial", "v1 rung-1 logprobs_mode": "v1-fixed"}


def finished_ladder(seeded) -> dict:  # type: ignore[no-untyped-def]
    http = seeded.http
    body = {"kind": "ladder", "workload": dict(TINY_WORKLOAD), "reference": {"engine": "torch"},
            "candidate": {"engine": "torch", "label": "v1", "settings": {"logprobs_mode": "raw"}}}
    # The first job makes the server import the worker package (torch) to check the workload.
    r = http.post("/api/v1/jobs", json=body, timeout=120)
    assert r.status_code == 201, r.text
    runs = demo_runs()
    while (claimed := http.post("/api/v1/legs/claim", json={"worker": "w", "engines": ["torch"]})).status_code == 200:
        leg = claimed.json()
        seeded.points(leg["run_id"], dict(runs[SERIES_OF[leg["label"]]].series))
        done = http.post(f"/api/v1/legs/{leg['id']}/complete", json={"worker": "w", "attempt": leg["attempt"]})
        assert done.status_code == 200, done.text
    job = http.get(f"/api/v1/jobs/{r.json()['id']}").json()
    assert job["status"] == "finished"
    return job


def test_ladder_rows_closing_rung_patch_focus_and_frozen_link(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    job = finished_ladder(seeded)
    ladder = job["ladder"]
    refs = ladder["reference"]["run_ids"]
    rungs = [r["run_ids"][0] for r in ladder["rungs"]]
    page = new_page()
    page.goto(f"{seeded.url}/compare?reference={','.join(map(str, refs))}&candidates={','.join(map(str, rungs))}"
              f"&ladder={job['id']}")
    page.wait_for_selector("#panels[data-drawn='4']")
    page.wait_for_selector("#ladder-table")
    rows = page.eval_on_selector_all(
        "#ladder-table tr.ladder-row",
        "els => els.map(e => ({row: e.dataset.row, layer: e.dataset.layer, closing: e.classList.contains('closing'),"
        " cells: Object.fromEntries([...e.querySelectorAll('td.cell')].map(c => [c.dataset.metric, c.className]))}))",
    )
    assert [r["row"] for r in rows] == ["rung-0", "rung-1", "ablation-logprobs_mode"]
    assert [r["closing"] for r in rows] == [False, True, False]
    assert rows[1]["layer"] == "semantic"
    assert "fail" in rows[0]["cells"]["clip_rate"] and "pass" in rows[1]["cells"]["clip_rate"]
    assert "closes the gap" in page.inner_text("#ladder-table")
    assert page.inner_text("#ladder-closing") == "1 (logprobs_mode)"
    assert '"logprobs_mode": "processed"' in page.inner_text("#ladder-patch")
    assert "Rung 1 closes the gap" in page.inner_text("#ladder-words")

    # A click on rung 0 leaves only its run among the candidates drawn.
    def visible_candidates() -> list[int]:
        return page.eval_on_selector(
            ".panel[data-metric='clip_rate'] .plot",
            f"p => p.data.filter(t => [{','.join(map(str, rungs))}].map(String).includes(String(t.legendgroup))"
            " && t.visible !== 'legendonly').map(t => Number(t.legendgroup))",
        )
    assert sorted(visible_candidates()) == sorted(rungs)
    page.click("#ladder-table tr[data-row='rung-0']")
    page.wait_for_function(f"document.querySelector(\".panel[data-metric='clip_rate'] .plot\").data"
                           f".filter(t => String(t.legendgroup) === '{rungs[1]}')[0].visible === 'legendonly'")
    assert visible_candidates() == [rungs[0]]
    screenshot(page, "ladder")

    # Bisect on the diverging rung-0 run: it came from a job, so the leg count comes back.
    use_token(page, seeded.project.write)
    page.reload()  # the token is kept; the page redraws once, so the click is not raced by a redraw
    page.wait_for_selector("#ladder-table")
    page.click(f".diagnosis[data-candidate='{rungs[0]}'] .bisect-ask")
    page.wait_for_selector(f".diagnosis[data-candidate='{rungs[0]}'] .bisect-start")
    assert "1 legs" in page.inner_text(f".diagnosis[data-candidate='{rungs[0]}'] .bisect")

    url = make_link(page, frozen=True)
    reader = new_page()
    reader.goto(url)
    reader.wait_for_selector("#panels[data-drawn='4']")
    reader.wait_for_selector("#ladder-table")
    assert reader.inner_text("#ladder-closing") == "1 (logprobs_mode)"
    assert '"logprobs_mode": "processed"' in reader.inner_text("#ladder-patch")
    assert reader.query_selector(".bisect") is None
    reader.click("#ladder-table tr[data-row='rung-0']")
    reader.wait_for_function("document.querySelectorAll('#ladder-table tr.focused').length === 1")
    assert len([p for p in panel_info(reader)]) == 4


def test_no_bisect_for_runs_not_from_a_job(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    page.goto(f"{seeded.url}/compare?reference={ids['reference']},{ids['reference-replica']}"
              f"&candidates={ids['v1-initial']}")
    page.wait_for_selector("#panels[data-drawn='4']")
    page.wait_for_function("window.performance.getEntriesByType('resource')"
                           f".some(e => e.name.endsWith('/api/v1/runs/{ids['v1-initial']}'))")
    page.wait_for_timeout(300)
    # v1-initial diverges, but it was posted by a trainer: a ladder could not rerun it.
    assert page.query_selector(".bisect") is None
    assert page.is_hidden("#ladder-section")

"""The compare page in Chromium: panels and traces, diagnosis, zoom sync, view state in the URL,
notes on every panel, live updates and exports."""

from __future__ import annotations

from pathlib import Path

from tests.browser.conftest import ARTIFACTS, screenshot

CANONICAL = ["clip_rate", "kl", "entropy", "reward"]


def open_compare(page, base: str, ids: dict[str, int], extra: str = ""):  # type: ignore[no-untyped-def]
    query = (
        f"reference={ids['reference']},{ids['reference-replica']}"
        f"&candidates={ids['v1-initial']},{ids['v1-fixed']}{extra}"
    )
    page.goto(f"{base}/compare?{query}")
    page.wait_for_selector("#panels[data-drawn='4']")


def panel_info(page):  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all(
        ".panel",
        """els => els.map(e => {
            const plot = e.querySelector('.plot');
            return {metric: e.dataset.metric, traces: plot.data.length,
                    range: plot._fullLayout.xaxis.range.map(Number),
                    maxX: Math.max(...plot._fullData.flatMap(t => Array.from(t.x))),
                    annotations: (plot.layout.annotations || []).map(a => a.text)};
        })""",
    )


def use_token(page, secret: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#token-input", secret)
    page.click("#token-save")


def test_four_panels_traces_diagnosis_and_config_diff(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids)
    panels = panel_info(page)
    # The band (upper, lower, center) and the four runs on each canonical panel.
    assert [(p["metric"], p["traces"]) for p in panels] == [(m, 7) for m in CANONICAL]
    # v1-initial leaves the band early in clip rate and KL: a marker writes its step on the chart
    # and names no layer (the diagnosis says where to start).
    for panel in panels[:2]:
        assert any(text.startswith("v1-initial · step ") for text in panel["annotations"])
        assert not any("semantic" in text for text in panel["annotations"])
    verdicts = page.eval_on_selector_all(
        ".diagnosis", "els => els.map(d => [...d.querySelectorAll('.verdicts > li')].map(li => [li.dataset.layer, li.dataset.verdict, li.classList.contains('start')]))"
    )
    layers = ["workload", "semantic", "inference-path", "objective"]
    assert [v[0] for v in verdicts[0]] == layers and [v[0] for v in verdicts[1]] == layers
    assert [v for v in verdicts[0] if v[2]] == [["semantic", "fail", True]]
    assert [v[1] for v in verdicts[1]] == ["pass"] * 4
    config_layers = page.eval_on_selector_all("#config-diff .config-layer", "els => els.map(e => e.dataset.layer)")
    assert config_layers == ["semantic", "inference-path"]
    assert "logprobs_mode" in page.inner_text("#config-diff .config-layer[data-layer='semantic']")
    # Hovering a step shows every run's value there (Plotly's unified x hover, set by the server).
    box = page.locator(".panel[data-metric='reward'] .nsewdrag").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_selector(".panel[data-metric='reward'] .hoverlayer .legend")
    hover = page.eval_on_selector(".panel[data-metric='reward'] .hoverlayer", "g => g.textContent")
    for name in ("reference", "reference-replica", "v1-initial", "v1-fixed"):
        assert name in hover, hover
    screenshot(page, "compare-overlay")

    # Diff mode draws candidate − reference: the band around zero and one trace per candidate.
    page.check("#mode-diff")
    page.wait_for_function("() => document.querySelector('.panel .plot').data.length === 5")
    assert "mode=diff" in page.url
    # Log y is an overlay view: each panel's switch is off in diff mode.
    assert page.eval_on_selector_all(".panel button.log-y", "bs => bs.map(b => b.disabled)") == [True] * 4


def test_zoom_on_one_panel_zooms_all_and_lives_in_the_url(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids)
    box = page.locator(".panel[data-metric='kl'] .nsewdrag").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, y + 2, steps=8)
    page.mouse.move(box["x"] + box["width"] * 0.60, y + 3, steps=8)
    page.mouse.up()
    page.wait_for_function("() => location.search.includes('x0=')")
    ranges = [p["range"] for p in panel_info(page)]
    x0, x1 = ranges[1]
    assert 30 < x0 < x1 < 140, ranges
    for other in ranges:
        assert other == [x0, x1] or max(abs(a - b) for a, b in zip(other, [x0, x1], strict=True)) < 1e-6
    screenshot(page, "compare-zoomed")

    # The view (zoom, smoothing, log y of a panel) survives a reload from the URL alone.
    page.click(".panel[data-metric='kl'] button.log-y")
    page.wait_for_function("() => location.search.includes('logy=kl')")
    reopened = new_page()
    reopened.goto(page.url)
    reopened.wait_for_selector("#panels[data-drawn='4']")
    again = panel_info(reopened)
    assert all(abs(p["range"][0] - x0) < 1e-2 and abs(p["range"][1] - x1) < 1e-2 for p in again)
    axes = reopened.eval_on_selector_all(".panel .plot", "ps => ps.map(p => p._fullLayout.yaxis.type)")
    assert axes == ["linear", "log", "linear", "linear"]
    assert reopened.get_attribute(".panel[data-metric='kl'] button.log-y", "aria-pressed") == "true"
    # Reset zoom goes back to the whole run on every panel.
    reopened.click("#reset-zoom")
    reopened.wait_for_function("() => !location.search.includes('x0=')")
    assert all(p["range"][1] > 190 for p in panel_info(reopened))


def test_smoothing_and_an_added_metric(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids)
    line = "p => Array.from(p._fullData.find(t => t.name === 'reference (reference)').y.slice(0, 50))"
    raw = page.eval_on_selector(".panel[data-metric='reward'] .plot", line)
    page.eval_on_selector("#smoothing", "s => { s.value = '0.9'; s.dispatchEvent(new Event('change')); }")
    page.wait_for_function("() => location.search.includes('smoothing=0.9')")
    page.wait_for_function(
        "() => document.querySelector(\".panel[data-metric='reward'] .plot\")._fullData.length === 11"
    )
    smoothed = page.eval_on_selector(".panel[data-metric='reward'] .plot", line)
    # The unsmoothed line stays, faint, under the smoothed one.
    faint = page.eval_on_selector(
        ".panel[data-metric='reward'] .plot",
        "p => { const t = p._fullData.find(t => t.name === 'reference (unsmoothed)'); return [Array.from(t.y.slice(0, 50)), t.opacity]; }",
    )
    assert faint[0] == raw and faint[1] < 0.5
    # The server smooths; the smoothed line moves less from step to step.
    wiggle = lambda ys: sum(abs(a - b) for a, b in zip(ys, ys[1:], strict=False))  # noqa: E731
    assert wiggle(smoothed) < wiggle(raw) / 2
    # In diff mode too, each smoothed difference has its unsmoothed one faint underneath.
    page.check("#mode-diff")
    page.wait_for_function(
        "() => document.querySelector(\".panel[data-metric='reward'] .plot\")._fullData"
        ".some(t => t.name === 'v1-initial − reference (unsmoothed)' && t.opacity < 0.5)"
    )
    page.check("#mode-overlay")

    page.focus("#metric-choice")
    page.wait_for_selector("#metric-choice option[value='logprob_abs_diff_mean']", state="attached")
    page.select_option("#metric-choice", "logprob_abs_diff_mean")
    page.click("#metric-add")
    page.wait_for_selector("#panels[data-drawn='5']")
    assert "metrics=clip_rate,kl,entropy,reward,logprob_abs_diff_mean" in page.url
    page.click(".panel[data-metric='entropy'] button.remove")
    page.wait_for_function("() => document.querySelectorAll('.panel').length === 4")
    assert "entropy" not in page.url
    # The menu offers a removed metric again, in order, and it comes back.
    options = page.eval_on_selector_all("#metric-choice option", "os => os.map(o => o.value)")
    assert options.count("entropy") == 1 and options[1:] == sorted(options[1:])
    page.select_option("#metric-choice", "entropy")
    page.click("#metric-add")
    page.wait_for_selector("#panels[data-drawn='5']")
    assert "metrics=clip_rate,kl,reward,logprob_abs_diff_mean,entropy" in page.url


def test_a_note_shows_on_every_panel_for_everyone(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids)
    # Without a token the form is not offered; the page says what pinning a note needs.
    page.wait_for_selector("body[data-access='read']")
    assert page.is_hidden("#note-form") and "write token" in page.inner_text("#note-hint")
    use_token(page, seeded.project.write)
    page.fill("#note-step", "60")
    page.fill("#note-text", "weights reloaded <b>here</b>")
    page.click("#note-add")
    page.wait_for_function("() => document.querySelectorAll('#notes li[data-note-id]').length === 1")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.panel .plot')].every(p => (p.layout.shapes || []).some(s => s.x0 === 60 && s.name && s.name.startsWith('note-')))"
    )
    labels = page.eval_on_selector_all(
        ".panel", "els => els.map(e => [...e.querySelectorAll('.annotation-text')].map(t => t.textContent))"
    )
    assert all("✎ weights reloaded <b>here</b>" in texts for texts in labels), labels
    screenshot(page, "compare-note")

    other = new_page()  # another person, no token
    open_compare(other, seeded.url, ids)
    other.wait_for_selector("#notes li[data-note-id]")
    labels = other.eval_on_selector_all(
        ".panel", "els => els.map(e => [...e.querySelectorAll('.annotation-text')].map(t => t.textContent))"
    )
    assert len(labels) == 4 and all("✎ weights reloaded <b>here</b>" in texts for texts in labels)


def test_live_points_appear_and_the_page_says_when_a_run_finishes(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    from tests.compare.synthetic_runs import demo_runs

    ids = seeded.demo(stop=100)
    page = new_page()
    open_compare(page, seeded.url, ids, "&poll=600")
    assert max(p["maxX"] for p in panel_info(page)) == 99
    page.wait_for_selector("#live:has-text('4 running')")
    for key, run in demo_runs().items():
        seeded.points(ids[key], dict(run.series), start=100)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.panel .plot')].every(p => Math.max(...p._fullData.flatMap(t => Array.from(t.x))) === 199)"
    )
    seeded.http.patch(f"/api/v1/runs/{ids['v1-fixed']}", json={"status": "finished"}).raise_for_status()
    page.wait_for_selector(".toast:has-text('v1-fixed finished at step 199')")
    page.wait_for_selector("#live:has-text('3 running')")


def test_exports_png_csv_and_an_offline_html_file(new_page, seeded, browser) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids, "&x0=20&x1=60")
    with page.expect_download() as png:
        page.click(".panel[data-metric='kl'] button.png")
    assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with page.expect_download() as csv:
        page.click("#export-csv")
    lines = Path(csv.value.path()).read_text().splitlines()
    assert lines[0] == "metric,run_id,run,role,step,value,bucket_min,bucket_max"
    rows = [line.split(",") for line in lines[1:]]
    # The series shown: four metrics × four runs × the zoomed steps 20..60.
    assert {(r[0], r[2]) for r in rows} == {(m, n) for m in CANONICAL for n in ("reference", "reference-replica", "v1-initial", "v1-fixed")}
    assert {int(r[4]) for r in rows} == set(range(20, 61))

    with page.expect_download() as exported:
        page.click("#export-html")
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "comparison-export.html"
    exported.value.save_as(target)
    html = target.read_text()
    assert "<script src" not in html and "http://" not in html.split("<script>", 2)[-1][:2000]
    offline = browser.new_context(offline=True)
    try:
        view = offline.new_page()
        view.goto(target.as_uri())
        view.wait_for_function("() => document.querySelectorAll('.plot .main-svg').length >= 8")
        traces = view.eval_on_selector_all(".plot", "els => els.map(e => e.data.length)")
        assert traces == [7, 7, 7, 7]
        assert "start with: semantic" in view.inner_text("body")
        view.screenshot(path=str(ARTIFACTS / "comparison-export.png"))
    finally:
        offline.close()


def test_a_bad_address_says_what_is_wrong(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    page.goto(f"{seeded.url}/compare?reference=abc")
    page.wait_for_selector("#status.error")
    assert 'reference: "abc" is not a run id' in page.inner_text("#status")
    page.goto(f"{seeded.url}/compare?reference=999999")
    page.wait_for_selector("#status.error")
    assert "run 999999 not found" in page.inner_text("#status")
    assert page.locator(".panel").count() == 0

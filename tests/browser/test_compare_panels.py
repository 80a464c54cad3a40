"""The compare page's panels in Chromium: a y range that follows the reference band, "fit all",
log y per panel, one legend for the page, hover on every panel at once, the smoothing slider's
single request and a modebar that keeps the data here."""

from __future__ import annotations

import re

from tests.browser.conftest import screenshot
from tests.browser.test_compare_page import open_compare

Y_RANGE = "p => p._fullLayout.yaxis.range.map(Number)"
CLIP_LABELS = "p => [...p.querySelectorAll('.annotation')].map(a => a.textContent).filter(t => t.includes('off scale'))"


def test_a_far_candidate_is_clipped_and_fit_all_brings_it_back(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids)
    kl = ".panel[data-metric='kl'] .plot"
    low, high = page.eval_on_selector(kl, Y_RANGE)
    candidate_max = page.eval_on_selector(kl, "p => Math.max(...p._fullData.find(t => t.name === 'v1-initial').y.filter(Number.isFinite))")
    band_top = page.eval_on_selector(kl, "p => Math.max(...p._fullData.find(t => t.name === 'band upper').y.filter(Number.isFinite))")
    # The range holds the band, not the candidate far above it (about 8× the band's top)...
    assert band_top <= high < candidate_max / 3, (low, high, band_top, candidate_max)
    (label,) = page.eval_on_selector(kl, CLIP_LABELS)
    # ...and an edge label gives the clipped run's value, at four significant digits.
    assert re.fullmatch(r"▲ v1-initial 0\.00[1-9]\d{3} \(off scale\)", label), label
    assert abs(float(label.split()[2]) - candidate_max) / candidate_max < 1e-3
    # Panels with every run near the band offer no "fit all".
    hidden = page.eval_on_selector_all(".panel", "ps => ps.map(p => [p.dataset.metric, p.querySelector('.fit-all').classList.contains('hidden')])")
    assert dict(hidden)["entropy"] is True and dict(hidden)["kl"] is False
    screenshot(page, "compare-focused")

    page.click(".panel[data-metric='kl'] button.fit-all")
    page.wait_for_function(f"() => ({Y_RANGE})(document.querySelector(\"{kl}\"))[1] >= {candidate_max}")
    assert page.eval_on_selector(kl, CLIP_LABELS) == []
    assert page.get_attribute(".panel[data-metric='kl'] button.fit-all", "aria-pressed") == "true"
    # Only that panel changed.
    assert page.eval_on_selector(".panel[data-metric='clip_rate'] .plot", CLIP_LABELS) != []
    screenshot(page, "compare-fit-all")
    page.click(".panel[data-metric='kl'] button.fit-all")
    page.wait_for_function(f"() => ({Y_RANGE})(document.querySelector(\"{kl}\"))[1] < {candidate_max}")

    # Log y on the KL panel alone keeps the focus, in log units.
    page.click(".panel[data-metric='kl'] button.log-y")
    page.wait_for_function(f"() => document.querySelector(\"{kl}\")._fullLayout.yaxis.type === 'log'")
    log_low, log_high = page.eval_on_selector(kl, Y_RANGE)
    assert abs(10**log_high - high) / high < 1e-6 and log_low < log_high
    types = page.eval_on_selector_all(".panel .plot", "ps => ps.map(p => p._fullLayout.yaxis.type)")
    assert types == ["linear", "log", "linear", "linear"]
    assert "logy=kl" in page.url


def test_one_legend_hides_a_run_on_every_panel(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids)
    names = page.eval_on_selector_all("#legend .legend-item", "bs => bs.map(b => b.textContent)")
    assert names == ["reference band (replicas, ±3σ)", "reference (reference)", "reference-replica (reference)", "v1-initial", "v1-fixed"]
    # No panel draws a legend of its own.
    assert page.eval_on_selector_all(".panel .plot", "ps => ps.map(p => p._fullLayout.showlegend)") == [False] * 4
    assert page.locator(".panel .legend").count() == 0
    visible = """ps => ps.map(p => p._fullData.filter(t => t.legendgroup === '%s').map(t => t.visible))"""
    group = str(ids["v1-initial"])
    page.click(f"#legend .legend-item[data-group='{group}']")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.panel .plot')].every(p => p._fullData.filter(t => t.legendgroup === '{group}').every(t => t.visible === false))"
    )
    assert page.get_attribute(f"#legend .legend-item[data-group='{group}']", "aria-pressed") == "false"
    # The other runs stay; the hidden run's off-scale label goes with it.
    assert page.eval_on_selector_all(".panel .plot", visible % ids["v1-fixed"]) == [[True]] * 4
    assert page.eval_on_selector(".panel[data-metric='kl'] .plot", CLIP_LABELS) == []
    screenshot(page, "compare-legend-hidden")
    page.click(f"#legend .legend-item[data-group='{group}']")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.panel .plot')].every(p => p._fullData.filter(t => t.legendgroup === '{group}').every(t => t.visible === true))"
    )


def test_hover_shows_the_same_step_on_every_panel(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids)
    box = page.locator(".panel[data-metric='reward'] .nsewdrag").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => document.querySelectorAll('.panel .hoverlayer .legend').length === 4")
    texts = page.eval_on_selector_all(
        ".panel", "ps => ps.map(p => [...p.querySelectorAll('.hoverlayer .legend text')].map(t => t.textContent))"
    )
    titles = {rows[0] for rows in texts}
    assert len(titles) == 1 and re.fullmatch(r"step \d+", titles.pop()), texts
    for rows in texts:
        # One band row, "[low, high]"; each run at four significant digits.
        band = [r for r in rows if r.startswith("band")]
        assert len(band) == 1 and re.fullmatch(r"band : \[-?[\d.e+-]+, -?[\d.e+-]+\]", band[0]), rows
        values = [r.rsplit(" : ", 1)[1] for r in rows[1:] if not r.startswith("band")]
        assert len(values) == 4, rows
        for value in values:
            digits = re.sub(r"e[+-]\d+$", "", value).replace("-", "").replace(".", "").lstrip("0")
            assert len(digits) <= 4, value
    screenshot(page, "compare-hover")
    page.mouse.move(5, 5)
    page.wait_for_function("() => document.querySelectorAll('.panel .hoverlayer .legend').length === 0")


def test_the_slider_asks_once_it_settles(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    page = new_page()
    open_compare(page, seeded.url, ids)
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/compare" in r.url else None)
    page.focus("#smoothing")
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('smoothing=0.06')")
    page.wait_for_timeout(800)
    assert len(asked) == 1 and "smoothing=0.06" in asked[0], asked


def test_the_modebar_offers_only_local_buttons(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(stop=40)
    page = new_page()
    open_compare(page, seeded.url, ids)
    buttons = page.eval_on_selector(
        ".panel[data-metric='kl']", "p => [...p.querySelectorAll('.modebar-btn')].map(b => b.getAttribute('data-title'))"
    )
    assert buttons == ["Download plot as a PNG", "Zoom", "Pan", "Zoom in", "Zoom out", "Autoscale", "Reset axes"]
    assert page.locator(".modebar a, .modebar-btn[data-title*='Chart Studio'], .modebar-btn[data-title*='cloud']").count() == 0


PACE = {"reference": 2.0, "reference-replica": 2.2, "v1-initial": 3.0, "v1-fixed": 2.5}
X_TITLE = "p => p._fullLayout.xaxis.title.text"


def test_x_switches_to_relative_wall_time_without_asking_again(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(seconds_per_step=PACE)
    page = new_page()
    open_compare(page, seeded.url, ids)
    kl = ".panel[data-metric='kl'] .plot"
    assert page.eval_on_selector(kl, X_TITLE) == "step"
    assert page.is_enabled("#x-time") and page.text_content("#x-axis-reason") == ""
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/compare" in r.url else None)
    page.check("#x-time")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.panel .plot')].every(p => p._fullLayout.xaxis.title.text.startsWith('relative wall time'))"
    )
    assert "x=time" in page.url
    # The longest run is 597 s: the axis is in minutes.
    assert page.eval_on_selector(kl, X_TITLE) == "relative wall time (minutes since each run’s first point)"
    # Each run on its own clock: v1-initial logs a step every 3 s, the band follows the
    # references' median (2 s and 2.2 s a step).
    trace = """(p, name) => { const t = p.data.find(t => t.name === name);
                               return [Array.from(t.x), Array.from(t.text)]; }"""
    x, steps = page.eval_on_selector(kl, f"p => ({trace})(p, 'v1-initial')")
    assert len(x) == len(steps) > 100 and steps[:3] == [0, 1, 2]
    for minutes, step in zip(x, steps, strict=True):
        assert abs(minutes - 3.0 * step / 60) < 1e-6, (minutes, step)
    band_x, band_steps = page.eval_on_selector(kl, f"p => ({trace})(p, p.data.find(t => t.name.startsWith('reference band')).name)")
    for minutes, step in zip(band_x, band_steps, strict=True):
        assert abs(minutes - 2.1 * step / 60) < 1e-6, (minutes, step)
    # The divergence marker moved with its run; its label still names the step.
    marker = page.eval_on_selector(
        kl, f"p => [p.layout.shapes.find(s => s.name === 'marker:{ids['v1-initial']}').x0, "
            f"p.layout.annotations.find(a => a.name === 'marker:{ids['v1-initial']}').text]")
    step = int(marker[1].rsplit("step ", 1)[1])
    assert abs(marker[0] - 3.0 * step / 60) < 1e-6
    # Hover gives the time in the title and each run's own step.
    box = page.locator(".panel[data-metric='kl'] .nsewdrag").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => document.querySelectorAll('.panel .hoverlayer .legend').length === 4")
    rows = page.eval_on_selector(".panel[data-metric='kl']", "p => [...p.querySelectorAll('.hoverlayer .legend text')].map(t => t.textContent)")
    assert re.fullmatch(r"[\d.]+ min", rows[0]), rows
    assert any(re.search(r"v1-initial : -?[\d.e+-]+ · step \d+", r) for r in rows), rows
    screenshot(page, "compare-relative-time")
    page.mouse.move(5, 5)
    # A zoom is kept in the URL in seconds, whatever unit the axis is drawn in.
    page.eval_on_selector(kl, "p => Plotly.relayout(p, {'xaxis.range': [1, 2]})")
    page.wait_for_function("() => location.search.includes('x0=60&x1=120')")
    assert page.eval_on_selector(".panel[data-metric='reward'] .plot", "p => p._fullLayout.xaxis.range.map(Number)") == [1, 2]
    assert asked == []

    # The address keeps the axis: a reload draws relative time again.
    page.reload()
    page.wait_for_selector("#panels[data-drawn='4']")
    assert page.eval_on_selector(kl, X_TITLE).startswith("relative wall time") and page.is_checked("#x-time")
    assert page.eval_on_selector(kl, "p => p._fullLayout.xaxis.range.map(Number)") == [1, 2]
    page.check("#x-step")
    page.wait_for_function(f"() => ({X_TITLE})(document.querySelector(\"{kl}\")) === 'step'")
    assert "x=time" not in page.url and "x0=" not in page.url
    x = page.eval_on_selector(kl, "p => Array.from(p._fullData.find(t => t.name === 'v1-initial').x)")
    assert x[:3] == [0, 1, 2]


def test_step_only_when_a_run_has_no_wall_times(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(seconds_per_step={k: v for k, v in PACE.items() if k != "v1-fixed"})
    page = new_page()
    open_compare(page, seeded.url, ids, "&x=time")
    assert page.eval_on_selector(".panel[data-metric='kl'] .plot", X_TITLE) == "step"
    assert page.is_disabled("#x-time") and page.is_checked("#x-step")
    reason = page.text_content("#x-axis-reason")
    assert reason == "v1-fixed recorded no wall times (no times were sent with its points), so x is step"
    page.wait_for_function("() => !location.search.includes('x=time')")
    screenshot(page, "compare-step-only")

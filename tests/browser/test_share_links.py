"""Share links in Chromium: the view round trip, frozen data, revocation."""

from __future__ import annotations

from tests.browser.conftest import screenshot
from tests.browser.test_compare_page import open_compare, panel_info, use_token
from tests.compare.synthetic_runs import demo_runs


def make_link(page, *, frozen: bool) -> str:  # type: ignore[no-untyped-def]
    page.set_checked("#share-freeze", frozen)
    page.click("#share")
    page.wait_for_selector("#share-url")
    url = page.input_value("#share-url")
    assert "/s/pss_" in url
    return url


def test_a_link_restores_the_view_and_a_frozen_one_ignores_later_points(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(stop=100)
    author = new_page()
    open_compare(author, seeded.url, ids, "&smoothing=0.5&mode=diff&x0=10&x1=80")
    use_token(author, seeded.project.write)
    frozen_url = make_link(author, frozen=True)
    live_url = make_link(author, frozen=False)
    for key, run in demo_runs().items():
        seeded.points(ids[key], dict(run.series), start=100)

    reader = new_page()  # a fresh browser: no token, nothing stored
    reader.goto(frozen_url)
    reader.wait_for_selector("#panels[data-drawn='4']")
    assert reader.get_attribute("#share-banner", "data-frozen") == "true"
    assert "frozen snapshot" in reader.inner_text("#share-banner")
    assert reader.inner_text("#share-made")  # when the link was made
    # A read-only page says its smoothing instead of offering the slider.
    assert "smoothing 0.50" in reader.inner_text("#share-banner")
    assert reader.is_checked("#mode-diff")
    panels = panel_info(reader)
    assert [p["metric"] for p in panels] == ["clip_rate", "kl", "entropy", "reward"]
    # Diff mode at smoothing 0.5: the band, and two candidates each over its faint unsmoothed diff.
    assert all(p["traces"] == 7 for p in panels)
    assert all(p["range"] == [10, 80] for p in panels)
    assert max(p["maxX"] for p in panels) == 99  # the points posted later are not there
    # Read-only: no notes form, no share, smoothing or metric controls, no list of links.
    for control in ("#note-form", "#share-controls", "#metric-controls", "#smoothing-control", "#share-links"):
        assert reader.is_hidden(control)
    screenshot(reader, "share-frozen")

    live = new_page()
    live.goto(live_url)
    live.wait_for_selector("#panels[data-drawn='4']")
    assert live.get_attribute("#share-banner", "data-frozen") == "false"
    assert max(p["maxX"] for p in panel_info(live)) == 199
    assert all(p["range"] == [10, 80] for p in panel_info(live))


def test_a_revoked_link_is_refused(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(stop=50)
    author = new_page()
    open_compare(author, seeded.url, ids)
    use_token(author, seeded.project.write)
    url = make_link(author, frozen=True)
    author.click("#share-links summary")
    author.click("#share-list tr[data-state='open'] .share-revoke")
    author.wait_for_selector("#share-list tr[data-state='revoked']")

    reader = new_page()
    reader.goto(url)
    reader.wait_for_selector("#status.error")
    assert "revoked" in reader.inner_text("#status")
    assert reader.locator(".panel").count() == 0
    assert reader.get_attribute("#panels", "data-drawn") is None
    # A refused page offers nothing to edit.
    for control in ("#share", "#note-add", "#smoothing", "#metric-add", "#export-csv"):
        assert reader.is_hidden(control), control


def test_a_comparison_lists_its_links_and_a_new_one_appears_in_view(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(stop=60)
    author = new_page(permissions=["clipboard-read", "clipboard-write"])
    open_compare(author, seeded.url, ids)
    # Without a write token the list is not offered (it needs one).
    assert author.is_hidden("#share-links")
    use_token(author, seeded.project.write)
    first = make_link(author, frozen=True)
    author.wait_for_selector("#share-links:not(.hidden)")
    author.select_option("#share-expiry", "24")
    # Made while scrolled to the bottom of the page: the new link is scrolled into view.
    author.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    second = make_link(author, frozen=False)
    assert second != first
    in_view = author.eval_on_selector(
        "#share-url", "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }"
    )
    assert in_view
    author.click("#share-copy")
    author.wait_for_selector("#share-copied:has-text('copied')")
    assert author.evaluate("() => navigator.clipboard.readText()") == second

    author.click("#share-links summary")
    author.wait_for_function("() => document.querySelectorAll('#share-list tbody tr').length === 2")
    rows = author.eval_on_selector_all(
        "#share-list tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    # Newest first: made, expiry, live or frozen, state, and a Revoke button on each.
    assert [r[2] for r in rows] == ["live", "frozen"]
    assert rows[0][1] != "never" and rows[1][1] == "never"
    assert [r[3] for r in rows] == ["open", "open"] and [r[4] for r in rows] == ["Revoke", "Revoke"]
    screenshot(author, "share-list")
    # Revoking the older link leaves the newer one's Revoke button.
    author.click("#share-list tbody tr:nth-child(2) .share-revoke")
    author.wait_for_selector("#share-list tbody tr:nth-child(2)[data-state='revoked']")
    assert author.locator("#share-list tbody tr:nth-child(1) .share-revoke").is_enabled()
    reader = new_page()
    reader.goto(first)
    reader.wait_for_selector("#status.error")
    reader.goto(second)
    reader.wait_for_selector("#panels[data-drawn='4']")

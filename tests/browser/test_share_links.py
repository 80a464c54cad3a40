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
    assert reader.input_value("#smoothing") == "0.5" and reader.is_disabled("#smoothing")
    assert reader.is_checked("#mode-diff")
    panels = panel_info(reader)
    assert [p["metric"] for p in panels] == ["clip_rate", "kl", "entropy", "reward"]
    assert all(p["traces"] == 5 for p in panels)  # diff mode: band and two candidates
    assert all(p["range"] == [10, 80] for p in panels)
    assert max(p["maxX"] for p in panels) == 99  # the points posted later are not there
    # Read-only: no notes form, no share or metric controls.
    for control in ("#note-form", "#share-controls", "#metric-controls"):
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
    author.click("#share-revoke")
    author.wait_for_selector("#share-revoke:has-text('Revoked')")

    reader = new_page()
    reader.goto(url)
    reader.wait_for_selector("#status.error")
    assert "revoked" in reader.inner_text("#status")
    assert reader.locator(".panel").count() == 0
    assert reader.get_attribute("#panels", "data-drawn") is None

"""Every string a user typed renders as text; pages carry a Content-Security-Policy."""

from __future__ import annotations

from tests.browser.conftest import screenshot
from tests.browser.test_compare_page import open_compare

XSS_NAME = '<img src=x onerror="window.__pwned=1;alert(1)">'


def assert_inert(page) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("() => window.__pwned") is None
    assert page.dialogs == []
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("body script:not([src])").count() == 0


def test_an_xss_named_run_renders_as_text(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(stop=60, names={"v1-initial": XSS_NAME})
    seeded.http.patch(
        f"/api/v1/runs/{ids['v1-initial']}",
        json={"tags": ["<script>alert(2)</script>"], "config": {"dataset": "<svg onload=alert(3)>"}},
    ).raise_for_status()
    seeded.http.post(
        "/api/v1/notes",
        json={"runs": list(ids.values()), "step": 30, "text": "<img src=x onerror=alert(4)>"},
    ).raise_for_status()

    page = new_page()
    response = page.goto(f"{seeded.url}/projects/{seeded.project.slug}")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "object-src 'none'" in csp
    page.wait_for_selector("#rows tr")
    assert page.locator("td.name", has_text=XSS_NAME).count() == 1
    assert page.locator(".tag", has_text="<script>alert(2)</script>").count() == 1
    assert_inert(page)
    screenshot(page, "xss-runs-page")

    page = new_page()
    open_compare(page, seeded.url, ids)
    assert page.locator(".run-chip .name", has_text=XSS_NAME).count() == 1
    assert XSS_NAME in page.inner_text("#diagnosis")
    assert "<svg onload=alert(3)>" in page.inner_text("#config-diff")
    assert "<img src=x onerror=alert(4)>" in page.inner_text("#notes")
    legend = page.eval_on_selector_all("#legend .legend-item", "els => els.map(e => e.textContent)")
    # The page's legend shows the name as text, exactly as typed.
    assert any(XSS_NAME in text for text in legend), legend
    notes = page.eval_on_selector_all(".panel[data-metric='kl'] .annotation-text", "els => els.map(e => e.textContent)")
    assert any("<img src=x onerror=alert(4)>" in text for text in notes)
    page.hover(".panel[data-metric='kl'] .nsewdrag")
    assert_inert(page)
    screenshot(page, "xss-compare-page")


def test_pages_and_static_files_carry_security_headers(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    for path in ("/", f"/projects/{seeded.project.slug}", "/compare?reference=1", "/s/pss_unknown",
                 "/static/js/api.js", "/static/vendor/plotly.min.js"):
        response = page.request.get(f"{seeded.url}{path}")
        assert response.status == 200, path
        headers = response.headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    assert page.request.get(f"{seeded.url}/static/vendor/plotly.js").status == 404
    assert page.request.get(f"{seeded.url}/static/vendor/../../backend/app.py").status == 404

"""/docs in Chromium: Swagger UI from the swagger-ui-bundle-v2 package renders the API's
operations under the app's Content-Security-Policy, with no request leaving the server."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.browser.conftest import screenshot


def test_the_api_docs_render_offline_under_the_csp(new_page, browser_server) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    here = urlsplit(browser_server.url).netloc
    elsewhere = []

    def only_here(route):  # type: ignore[no-untyped-def]
        if urlsplit(route.request.url).netloc in (here, "") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    response = page.goto(f"{browser_server.url}/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock-summary-path")
    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.getAttribute('data-path'))")
    assert "/api/v1/compare" in paths and "/api/v1/shares" in paths and len(paths) > 40
    assert "ParityScope" in page.inner_text(".info .title")
    # An operation opens with its parameters (the fixture fails the test on any CSP violation).
    page.click(".opblock-summary-path[data-path='/api/v1/compare']")
    page.wait_for_selector(".opblock.is-open .parameters-container")
    assert "partial" in page.inner_text(".opblock.is-open .parameters-container")
    assert elsewhere == []
    screenshot(page, "api-docs")

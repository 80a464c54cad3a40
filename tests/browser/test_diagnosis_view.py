"""The diagnosis panel and the config table in Chromium: each verdict's facts as the server words
them, each quantity defined where a person and a screen reader find it, no raw flags or JSON;
"show every key" as the same table by layer; editing controls only for a write token."""

from __future__ import annotations

from tests.browser.conftest import screenshot
from tests.browser.test_compare_page import open_compare, use_token
from tests.compare.synthetic_runs import demo_runs

LAYERS = ["workload", "semantic", "inference-path", "objective"]
HIGHLIGHT = "rgb(255, 248, 197)"


def demo_with_sampling_seeds(seeded, stop: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The demo's runs, each leg with its own `sampling_seed`, as the job API records them."""
    ids = {}
    for index, (key, run) in enumerate(demo_runs().items()):
        ids[key] = seeded.run(run.name, config={**run.config, "sampling_seed": index + 1}, engine=dict(run.engine))
        seeded.points(ids[key], dict(run.series), stop=stop)
    return ids


def compare_payload(seeded, ids: dict[str, int]) -> dict:  # type: ignore[no-untyped-def]
    r = seeded.http.get(
        "/api/v1/compare",
        params={
            "reference": f"{ids['reference']},{ids['reference-replica']}",
            "candidates": f"{ids['v1-initial']},{ids['v1-fixed']}",
            "include": "series",
        },
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_each_verdict_shows_its_facts_with_their_definitions(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo()
    payload = compare_payload(seeded, ids)
    page = new_page()
    open_compare(page, seeded.url, ids)
    shown = page.eval_on_selector_all(
        ".diagnosis",
        """ds => ds.map(d => [...d.querySelectorAll('.verdicts > li')].map(li => ({
            layer: li.dataset.layer, verdict: li.dataset.verdict,
            facts: [...li.querySelectorAll('.facts > li')].map(f => ({
                text: f.firstChild.textContent, title: f.getAttribute('title'),
                described: f.getAttribute('aria-describedby')
                    ? document.getElementById(f.getAttribute('aria-describedby')).textContent : null})),
        })))""",
    )
    # Every verdict's facts, word for word as the server gives them (three significant digits,
    # units), each defined quantity with its definition as tooltip and as the fact's description.
    for candidate, verdicts in zip(payload["candidates"], shown, strict=True):
        expected = payload["diagnosis"][str(candidate)]["verdicts"]
        assert [v["layer"] for v in verdicts] == LAYERS
        for want, got in zip(expected, verdicts, strict=True):
            assert got["verdict"] == want["verdict"]
            assert [f["text"] for f in got["facts"]] == [f["fact"] for f in want["facts"]]
            assert [f["title"] for f in got["facts"]] == [f["definition"] for f in want["facts"]]
            assert [f["described"] for f in got["facts"]] == [f["definition"] for f in want["facts"]]
    semantic = next(v for v in shown[0] if v["layer"] == "semantic")
    assert semantic["verdict"] == "fail"
    assert any("nats" in f["text"] and f["title"] for f in semantic["facts"]), semantic
    assert any("standard errors" in f["text"] for f in semantic["facts"]), semantic

    # The charts' markers in words, for whoever cannot hover a chart, each quantity defined.
    exits = page.eval_on_selector_all(
        ".diagnosis", "ds => ds.map(d => [...d.querySelectorAll('.band-exits li')].map(li => [li.firstChild.textContent, li.title]))"
    )
    markers = [m for entry in payload["metrics"].values() for m in entry["markers"]]
    assert [e[0] for e in exits[0]] == [m["summary"] for m in markers if m["run_id"] == ids["v1-initial"]]
    assert len(exits[0]) >= 2 and all(payload["definitions"]["markers"]["distance"] in e[1] for e in exits[0])
    assert exits[1] == []

    # No raw flags, JSON dumps, repeated tables or undefined "effect size" in the diagnosis.
    text = page.inner_text("#diagnosis")
    for raw in ("mean_offset", "effect size", "true", "false", "{", "differing_keys", "evidence"):
        assert raw not in text, raw
    assert page.locator("#diagnosis pre, #diagnosis table, #diagnosis details").count() == 0
    start = f".diagnosis[data-candidate='{ids['v1-initial']}'] h3 .start-here"
    assert page.inner_text(start) == "start with: semantic"

    # A keyboard reaches a defined fact, and its definition shows while it has focus.
    fact = page.locator(".diagnosis .verdicts li[data-layer='semantic'] .facts li.defined").first
    definition = fact.locator(".definition")
    assert definition.bounding_box()["width"] <= 1
    fact.focus()
    box = definition.bounding_box()
    assert box["width"] > 100 and box["height"] > 10
    screenshot(page, "diagnosis-facts")


def test_show_every_key_is_the_config_table_by_layer(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = demo_with_sampling_seeds(seeded, stop=40)
    payload = compare_payload(seeded, ids)
    page = new_page()
    open_compare(page, seeded.url, ids)

    def rows(candidate: int) -> list[dict]:
        return page.eval_on_selector_all(
            f"#config-diff .config-candidate[data-candidate='{candidate}'] tbody tr",
            """trs => trs.map(tr => ({layer: tr.closest('.config-layer').dataset.layer, key: tr.dataset.key,
                cells: [...tr.cells].map(c => c.firstChild.textContent),
                note: tr.querySelector('.expected-note') ? tr.querySelector('.expected-note').textContent : null,
                background: getComputedStyle(tr.cells[0]).backgroundColor}))""",
        )

    initial, fixed = ids["v1-initial"], ids["v1-fixed"]
    # The differing keys only, by layer: the seed is the expected difference among replicas.
    differing = rows(initial)
    assert [r["key"] for r in differing] == [r["key"] for r in payload["config_diff"][str(initial)]]
    seed = next(r for r in rows(fixed) if r["key"] == "sampling_seed")
    assert seed["note"] == "expected: differs among replicas by design"
    assert "No setting differs beyond what differs among replicas by design." in page.inner_text("#config-diff")

    page.check("#config-all")
    page.wait_for_selector("#config-diff[data-every='true']")
    assert "Every key" in page.inner_text("#config-scope")
    assert page.locator("#config-diff pre").count() == 0
    for candidate in (initial, fixed):
        table = payload["config_table"][str(candidate)]
        shown = rows(candidate)
        # Every key, once, grouped by layer in the layers' order.
        assert sorted(r["key"] for r in shown) == sorted(r["key"] for r in table)
        layers = [r["layer"] for r in shown]
        assert layers == sorted(layers, key=lambda layer: (LAYERS + ["unclassified"]).index(layer))
        by_key = {r["key"]: r for r in table}
        for row in shown:
            want = by_key[row["key"]]
            assert row["layer"] == want["layer"]
            # Keys that differ stand out; a difference by design is said, muted, never as a failure.
            highlighted = want["differs"] and not want["expected"]
            assert (row["background"] == HIGHLIGHT) == highlighted, row
            assert (row["note"] is not None) == want["expected"], row
    assert any(r["differs"] for r in payload["config_table"][str(initial)])
    assert any(not r["differs"] for r in payload["config_table"][str(initial)])
    seed = next(r for r in rows(fixed) if r["key"] == "sampling_seed")
    replicas = payload["config_table"][str(fixed)]
    seed_row = next(r for r in replicas if r["key"] == "sampling_seed")
    assert seed["cells"][1] == ", ".join(str(v) for v in seed_row["replica_values"])
    # One table, not a dump of each run: it fits on a screen or two.
    assert page.locator("#config-section").bounding_box()["height"] < 1600
    screenshot(page, "config-every-key")

    page.uncheck("#config-all")
    page.wait_for_selector("#config-diff[data-every='false']")
    assert [r["key"] for r in rows(initial)] == [r["key"] for r in differing]


def test_editing_controls_only_with_a_write_token(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded.demo(stop=30)
    page = new_page()
    open_compare(page, seeded.url, ids)
    page.wait_for_selector("body[data-access='read']")
    # A public page read without a token: nothing that would fail for want of one.
    for control in ("#share", "#share-freeze", "#note-add", "#note-text"):
        assert page.is_hidden(control), control
    assert page.is_visible("#note-hint") and "write token" in page.inner_text("#note-hint")
    # Viewing controls stay.
    for control in ("#smoothing", "#mode-diff", "#export-csv", "#config-all"):
        assert page.is_visible(control), control

    # A read token cannot write either.
    with page.expect_response(lambda r: "/api/v1/shares?" in r.url) as answer:
        use_token(page, seeded.project.read)
    assert answer.value.status == 403
    page.wait_for_selector("body[data-access='read']")
    assert page.is_hidden("#share") and page.is_hidden("#note-add")

    page.click("#token-forget")
    use_token(page, seeded.project.write)
    page.wait_for_selector("body[data-access='write']")
    assert page.is_visible("#share") and page.is_visible("#note-add") and page.is_hidden("#note-hint")
    page.fill("#note-step", "12")
    page.fill("#note-text", "checked")
    page.click("#note-add")
    page.wait_for_selector("#notes li[data-note-id] .note-delete")

    # Forgetting the token takes the controls away again, the notes' delete buttons too.
    page.click("#token-forget")
    page.wait_for_selector("body[data-access='read']")
    assert page.is_hidden("#share") and page.is_hidden("#note-add") and page.is_visible("#note-hint")
    assert page.locator("#notes li[data-note-id]").count() == 1
    assert page.locator(".note-delete").count() == 0


def test_a_share_page_is_read_only_even_for_a_write_token(new_page, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = demo_with_sampling_seeds(seeded, stop=30)
    page = new_page()
    open_compare(page, seeded.url, ids)
    use_token(page, seeded.project.write)
    page.click("#share")
    url = page.input_value("#share-url")
    # The same browser, its write token still stored, opens the link: it reads, nothing more.
    page.goto(url)
    page.wait_for_selector("#panels[data-drawn='4']")
    assert page.evaluate("() => localStorage.getItem('parityscope.token')") == seeded.project.write
    for control in ("#share", "#note-add", "#note-hint", "#share-links", ".note-delete"):
        assert page.is_hidden(control), control
    assert page.locator(".diagnosis .facts li").count() > 0
    # Showing every key only reads what the link already holds.
    page.check("#config-all")
    page.wait_for_selector("#config-diff[data-every='true'] tr[data-key='sampling_seed'].expected")

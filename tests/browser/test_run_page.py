"""The run page in real Chromium: a run's MLflow artifacts are listed and download intact."""

from __future__ import annotations

from pathlib import Path

from tests.browser.conftest import screenshot


def test_the_run_page_lists_and_downloads_artifacts(new_page, seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = seeded.project
    http = seeded.http
    run = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": str(project.id), "run_name": "with <b>files</b>"})
    assert run.status_code == 200, run.text
    run_id = run.json()["run"]["info"]["run_id"]
    base = f"/api/2.0/mlflow-artifacts/artifacts/{project.id}/{run_id}/artifacts"
    weights = bytes(range(256)) * 8
    for path, content in {"checkpoint-2/model.safetensors": weights, "config/train.json": b'{"lr": 1e-05}'}.items():
        assert http.put(f"{base}/{path}", content=content).status_code == 200

    page = new_page()
    page.goto(f"{seeded.url}/projects/{project.slug}")
    page.get_by_role("link", name="open run with <b>files</b>").click()
    page.wait_for_url(f"**/runs/{run_id}")
    page.locator("tr.artifact").first.wait_for()
    assert page.locator("#title").inner_text() == "with <b>files</b>"  # text, never markup
    rows = [r.split("\t") for r in page.locator("tr.artifact").all_inner_texts()]
    assert [(r[0], r[1]) for r in rows] == [("checkpoint-2/model.safetensors", "2.0 KiB"), ("config/train.json", "13 B")]
    with page.expect_download() as download:
        page.get_by_role("button", name="download checkpoint-2/model.safetensors").click()
    saved = tmp_path / "model.safetensors"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "model.safetensors"
    assert saved.read_bytes() == weights
    screenshot(page, "run-artifacts")

    missing = new_page()
    missing.goto(f"{seeded.url}/runs/999999")
    missing.locator("#status.error").wait_for()
    assert "not found" in missing.locator("#status").inner_text()

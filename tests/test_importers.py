"""History imports: TensorBoard event files written by torch's SummaryWriter, CSV and JSONL
exports, through the CLI (over real HTTP) and the API; re-imports add nothing; malformed files
are refused with the line named and nothing stored."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from torch.utils.tensorboard import SummaryWriter
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.errors import BadInput
from backend.importers import read_csv
from tests.conftest import ProjectFixture

IMPORTS = "/api/v1/projects/{slug}/imports"


def wire(v: float) -> float | str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def scalar(tag: int, step: int) -> float:
    if step % 50 == 7:
        return [math.nan, math.inf, -math.inf][tag]
    return math.sin(step * 0.37 + tag) * 10 ** (tag - 2)


def write_events(directory: Path, steps: int = 200) -> dict[str, dict]:
    """Scalars (NaN and ±inf included), a histogram and a text; the expected stored series."""
    writer = SummaryWriter(str(directory))
    for step in range(steps):
        for tag in range(3):
            writer.add_scalar(f"train/metric_{tag}", scalar(tag, step), step)
    writer.add_histogram("weights", np.arange(10.0), 0)
    writer.add_text("notes", "warm start", 0)
    writer.close()
    # SummaryWriter stores scalars as float32: that is the exact value to expect.
    return {
        f"train/metric_{tag}": {
            "steps": list(range(steps)),
            "values": [wire(float(np.float32(scalar(tag, s)))) for s in range(steps)],
        }
        for tag in range(3)
    }


def runs_of(client: TestClient, project: ProjectFixture) -> list[dict]:
    return client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()["runs"]


def series(client: TestClient, project: ProjectFixture, run_id: int) -> dict:
    return client.get(f"/api/v1/runs/{run_id}/metrics", headers=project.auth("read")).json()


def invoke(*args: str):
    return CliRunner().invoke(cli, ["import", *args])


def test_summary_writer_event_files_import_exactly_and_only_once(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    logdir = tmp_path / "logs"
    expected_a = write_events(logdir / "v0-reference", steps=200)
    expected_b = write_events(logdir / "v1-candidate", steps=50)
    args = ["tensorboard", str(logdir), "--project", project.slug, "--url", live_server, "--token", project.write]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "skipped (not numeric scalars): notes/text_summary, weights" in result.output
    runs = {r["name"]: r for r in runs_of(client, project)}
    assert set(runs) == {"v0-reference", "v1-candidate"}
    assert series(client, project, runs["v0-reference"]["id"]) == expected_a
    assert series(client, project, runs["v1-candidate"]["id"]) == expected_b
    assert runs["v0-reference"]["status"] == "finished"
    assert "imported:tensorboard" in runs["v0-reference"]["tags"]

    # Again, without progress bars: the same runs, not one point more.
    result = invoke(*args, "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(runs_of(client, project)) == 2
    keys = client.get(f"/api/v1/runs/{runs['v0-reference']['id']}/keys", headers=project.auth("read")).json()
    assert [k["count"] for k in keys] == [200, 200, 200]

    # The same event file posted to the API lands in the same run.
    (event_file,) = (logdir / "v1-candidate").iterdir()
    r = client.post(
        IMPORTS.format(slug=project.slug), params={"format": "tensorboard"},
        content=event_file.read_bytes(), headers=project.auth(),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["created"] is False and r.json()["run"]["id"] == runs["v1-candidate"]["id"]
    assert r.json()["replaced"] == 150


WANDB_CSV = (
    "_step,_runtime,_timestamp,reward,kl_new_old,entropy,phase\n"
    "0,1.5,1732600000.25,0.125,NaN,2.5,warmup\n"
    "1,3.0,1732600001.5,0.25,,inf,warmup\n"
    "2,4.5,1732600002.75,-1e-300,0.001,-Infinity,train\n"
    "4,6.0,1732600004.0,0.1,0.30000000000000004,1,train\n"
)


def test_csv_export_imports_by_api_and_cli_with_wall_times(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    r = client.post(
        IMPORTS.format(slug=project.slug), params={"format": "csv", "filename": "history.csv"},
        content=WANDB_CSV.encode(), headers=project.auth(),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["created"] is True and out["points"] == 11 and out["run"]["name"] == "history.csv"
    assert out["keys"] == ["entropy", "kl_new_old", "reward"]
    assert out["skipped"] == ["_runtime", "phase"]
    assert out["run"]["status"] == "finished" and out["run"]["last_step"] == 4
    assert series(client, project, out["run"]["id"]) == {
        "entropy": {"steps": [0, 1, 2, 4], "values": [2.5, "Infinity", "-Infinity", 1.0]},
        "kl_new_old": {"steps": [0, 2, 4], "values": ["NaN", 0.001, 0.30000000000000004]},
        "reward": {"steps": [0, 1, 2, 4], "values": [0.125, 0.25, -1e-300, 0.1]},
    }
    # The same file through the CLI: the same run, nothing added.
    path = tmp_path / "history.csv"
    path.write_text(WANDB_CSV)
    result = invoke("csv", str(path), "--project", project.slug, "--url", live_server, "--token", project.write, "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"in run {out['run']['id']}" in result.output
    assert len(runs_of(client, project)) == 1


def test_jsonl_export_with_nan_literals_and_nested_values(client: TestClient, project: ProjectFixture) -> None:
    body = (
        b'{"_step": 0, "reward": 0.5, "kl": NaN, "media": {"path": "a.png"}}\n'
        b"\n"
        b'{"_step": 1, "reward": "Infinity", "kl": 1e-3, "done": false}\n'
    )
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "jsonl", "run_name": "wandb"}, content=body, headers=project.auth())
    assert r.status_code == 201, r.text
    assert r.json()["skipped"] == ["media/path", "done"]  # nested objects are flattened with / (a text here)
    assert series(client, project, r.json()["run"]["id"]) == {
        "kl": {"steps": [0, 1], "values": ["NaN", 0.001]},
        "reward": {"steps": [0, 1], "values": [0.5, "Infinity"]},
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("step,reward\n0,1\n1,2,3\n", "line 3: expected 2 fields as in the header, found 3"),
        ("step,reward,kl\n0,1,2\n1,2\n", "line 3: expected 3 fields as in the header, found 2"),
        ("step,reward\n0,1\n1,2\n2,high\n", "line 4, column 'reward': 'high' is not a number"),
        ('step,note,reward\n0,"two\nlines",1\n1,x,high\n', "line 4, column 'reward': 'high' is not a number"),
        ("step,reward\n0,1\n,2\n", "line 3, column 'step': the step is missing"),
        ("step,reward\n0,1\n1.5,2\n", "line 3, column 'step': step 1.5 is not an integer"),
        ("step,reward\n0,1\n-1,2\n", "line 3, column 'step': step -1 is outside"),
        ('step,reward\n0,1\n1,"2\n', "line 3: unexpected end of data"),
        ("epoch,reward\n0,1\n", "line 1: no step column"),
        ("step,reward,reward\n0,1,2\n", "line 1: column 'reward' appears twice"),
        ("", "line 1: the file is empty"),
    ],
)
def test_malformed_csv_names_the_line(content: str, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        read_csv(content.encode(), "bad.csv")
    assert message in caught.value.message


def test_malformed_csv_is_refused_by_the_api_and_nothing_is_stored(client: TestClient, project: ProjectFixture) -> None:
    content = b"step,reward\n0,1\n1,2\n2,high\n"
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "csv"}, content=content, headers=project.auth())
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "line 4, column 'reward': 'high' is not a number"
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "csv"}, content=b"", headers=project.auth())
    assert r.status_code == 422 and "body: empty" in r.json()["detail"]
    assert runs_of(client, project) == []


def test_jsonl_that_polars_cannot_build_is_refused_and_nothing_is_stored(client: TestClient, project: ProjectFixture) -> None:
    # Both fall back from read_ndjson (a NaN literal) to building the frame from Python rows.
    for content, message in [
        (b'{"step": 0, "kl": NaN}\n{"step": 1, "kl": [1, 2]}\n', "JSONL: "),
        (b'{"step": 0, "kl": NaN}\n{"step": 1, "kl": 1' + b"0" * 400 + b"}\n", "JSONL: an integer is too large"),
    ]:
        r = client.post(IMPORTS.format(slug=project.slug), params={"format": "jsonl"}, content=content, headers=project.auth())
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(message) and r.json()["field"] == "file"
    assert runs_of(client, project) == []


def test_malformed_files_through_the_cli(live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path) -> None:
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("step,reward\n0,1\n1,2\n2,oops\n")
    result = invoke("csv", str(bad_csv), "--project", project.slug, "--url", live_server, "--token", project.write)
    assert result.exit_code == 1
    assert "bad.csv: line 4, column 'reward': 'oops' is not a number" in result.output
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"step": 0, "r": 1}\n{"step": 1, "r": }\n')
    result = invoke("jsonl", str(bad_jsonl), "--project", project.slug, "--url", live_server, "--token", project.write)
    assert result.exit_code == 1 and "line 2: not valid JSON" in result.output
    not_events = tmp_path / "events.out.tfevents.123.host"
    not_events.write_bytes(b"this is not a record file")
    result = invoke("tensorboard", str(not_events), "--project", project.slug, "--url", live_server, "--token", project.write)
    assert result.exit_code == 1 and "not a TensorBoard event file" in result.output
    result = invoke("tensorboard", str(tmp_path / "missing"), "--project", project.slug, "--url", live_server, "--token", project.write)
    assert result.exit_code == 1 and "no such file or directory" in result.output
    header_only = tmp_path / "header.csv"
    header_only.write_text("step,reward\n")
    result = invoke("csv", str(header_only), "--project", project.slug, "--url", live_server, "--token", project.write)
    assert result.exit_code == 1 and "no numeric metric to import" in result.output
    good = tmp_path / "good.csv"
    good.write_text("step,reward\n0,1\n")
    result = invoke("csv", str(good), "--project", project.slug, "--url", live_server, "--token", project.read)
    assert result.exit_code == 1 and "403" in result.output
    assert runs_of(client, project) == []


def test_import_endpoint_checks_its_parameters(client: TestClient, project: ProjectFixture) -> None:
    url = IMPORTS.format(slug=project.slug)
    r = client.post(url, params={"format": "parquet"}, content=b"step,r\n0,1\n", headers=project.auth())
    assert r.status_code == 422 and "format" in r.json()["detail"]
    r = client.post(url, params={"format": "csv"}, content=b"step,r\n0,1\n", headers=project.auth("read"))
    assert r.status_code == 403
    r = client.post(url, params={"format": "csv"}, content=b"step,phase\n0,warmup\n", headers=project.auth())
    assert r.status_code == 422 and "no numeric metric" in r.json()["detail"]
    r = client.post(url, params={"format": "tensorboard"}, content=b"garbage", headers=project.auth())
    assert r.status_code == 422 and "not a TensorBoard event file" in r.json()["detail"]
    # Columns without a single value leave nothing to import either: no empty run.
    for content in (b"step,reward\n", b"step,reward\n0,\n1,\n"):
        r = client.post(url, params={"format": "csv"}, content=content, headers=project.auth())
        assert r.status_code == 422 and "no numeric metric" in r.json()["detail"], r.text
    assert runs_of(client, project) == []

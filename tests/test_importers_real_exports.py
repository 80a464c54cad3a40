"""Imports of files made by the real writers researchers use: torch's and tensorboardX's
SummaryWriter (``add_scalars``, ``add_hparams``, a damaged file), pandas' ``to_csv()``, nested
JSONL as W&B's ``wandb-history.jsonl`` holds it, and W&B chart CSV exports.

The W&B chart export is written here in W&B's own layout, checked against exports committed to
public repositories: the panel's x-axis column first (``"Step"``), then for each run and metric
``"<run> - <metric>"``, ``"<run> - <metric>__MIN"`` and ``"<run> - <metric>__MAX"``, every field
quoted, and an empty cell where a run has no point at that row's step (the runs' steps are the
union of all of them).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import tensorboardX
from fastapi.testclient import TestClient
from torch.utils.tensorboard import SummaryWriter
from typer.testing import CliRunner

from backend.cli import app as cli
from tests.conftest import ProjectFixture

IMPORTS = "/api/v1/projects/{slug}/imports"


def runs_of(client: TestClient, project: ProjectFixture) -> dict[str, dict]:
    page = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()
    return {r["name"]: r for r in page["runs"]}


def series(client: TestClient, project: ProjectFixture, run_id: int) -> dict:
    return client.get(f"/api/v1/runs/{run_id}/metrics", headers=project.auth("read")).json()


def invoke(project: ProjectFixture, url: str, *args: str):
    return CliRunner().invoke(
        cli, ["import", *args, "--project", project.slug, "--url", url, "--token", project.write, "--no-progress"]
    )


# -- W&B chart export ---------------------------------------------------------------------------


def chart_export(runs: dict[str, int], metrics: tuple[str, ...] = ("actor/pg_clipfrac", "critic/score/mean")) -> str:
    """A W&B chart export of ``runs`` (name → number of steps): value = step / 100 + metric index."""
    header = ["Step"]
    for run in runs:
        for metric in metrics:
            header += [f"{run} - {metric}", f"{run} - {metric}__MIN", f"{run} - {metric}__MAX"]
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(header)
    for step in range(max(runs.values())):
        row = [str(step)]
        for steps in runs.values():
            for index in range(len(metrics)):
                value = str(step / 100 + index) if step < steps else ""
                row += [value, value, value]
        writer.writerow(row)
    return out.getvalue()


def test_a_wandb_chart_export_becomes_one_run_per_wandb_run_and_a_longer_one_extends_them(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    path = tmp_path / "wandb_export_2026-11-30T03_42_23.467+01_00.csv"
    path.write_text(chart_export({"brisk-pond-1": 5, "true-pond-2": 3}))
    result = invoke(project, live_server, "csv", str(path))
    assert result.exit_code == 0, result.output
    assert "the run 'brisk-pond-1', its keys without the 'brisk-pond-1 - ' prefix" in result.output
    assert "dropped 4 __MIN/__MAX columns" in result.output
    runs = runs_of(client, project)
    assert set(runs) == {"brisk-pond-1", "true-pond-2"}
    got = series(client, project, runs["true-pond-2"]["id"])
    assert got == {
        "actor/pg_clipfrac": {"steps": [0, 1, 2], "values": [0.0, 0.01, 0.02]},
        "critic/score/mean": {"steps": [0, 1, 2], "values": [1.0, 1.01, 1.02]},
    }
    # The keys resolve through the alias table: verl's clip share and score.
    compare = client.get("/api/v1/compare", headers=project.auth("read"), params={
        "reference": runs["brisk-pond-1"]["id"], "candidates": runs["true-pond-2"]["id"],
        "metrics": "clip_rate_active,reward", "include": "series"})  # fmt: skip
    assert compare.status_code == 200, compare.text
    keys = {m: {s["key"] for s in body["series"]} for m, body in compare.json()["metrics"].items()}
    assert keys == {"clip_rate_active": {"actor/pg_clipfrac"}, "reward": {"critic/score/mean"}}

    # A later, longer export of the same runs extends them instead of adding runs.
    path.write_text(chart_export({"brisk-pond-1": 8, "true-pond-2": 6}))
    result = invoke(project, live_server, "csv", str(path))
    assert result.exit_code == 0, result.output
    runs_again = runs_of(client, project)
    assert set(runs_again) == {"brisk-pond-1", "true-pond-2"}
    assert runs_again["true-pond-2"]["id"] == runs["true-pond-2"]["id"]
    assert series(client, project, runs["true-pond-2"]["id"])["actor/pg_clipfrac"]["steps"] == list(range(6))

    # The API takes a one-run export and refuses a several-run one, naming what to do.
    one = client.post(IMPORTS.format(slug=project.slug), params={"format": "csv"},
                      content=chart_export({"lone-run-3": 4}).encode(), headers=project.auth())  # fmt: skip
    assert one.status_code == 201, one.text
    assert one.json()["run"]["name"] == "lone-run-3" and one.json()["keys"] == ["actor/pg_clipfrac", "critic/score/mean"]
    assert any("__MIN/__MAX" in note for note in one.json()["notes"])
    several = client.post(IMPORTS.format(slug=project.slug), params={"format": "csv"},
                          content=path.read_bytes(), headers=project.auth())  # fmt: skip
    assert several.status_code == 422
    assert "a W&B chart export of 2 runs ('brisk-pond-1', 'true-pond-2')" in several.json()["detail"]
    assert set(runs_of(client, project)) == {"brisk-pond-1", "true-pond-2", "lone-run-3"}


def test_a_bucketed_chart_export_says_it_lacks_points(client: TestClient, project: ProjectFixture) -> None:
    text = '"Step","r - loss","r - loss__MIN","r - loss__MAX"\n"0","1.5","1","2"\n"10","0.5","0.5","0.5"\n'
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "csv"}, content=text.encode(), headers=project.auth())
    assert r.status_code == 201, r.text
    assert any("merge several logged points" in note for note in r.json()["notes"])


# -- pandas ------------------------------------------------------------------------------------


def test_pandas_to_csv_with_its_index_and_a_chosen_step_column(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"train/global_step": [10, 20, 30], "train/loss": [0.5, 0.25, 0.125],
                          "train/epoch": [0.1, 0.2, 0.3]})  # fmt: skip
    path = tmp_path / "trainer_log.csv"
    frame.to_csv(path)  # pandas' default: an unnamed index column first
    assert path.read_text().startswith(",train/global_step,")
    result = invoke(project, live_server, "csv", str(path), "--step-column", "train/global_step")
    assert result.exit_code == 0, result.output
    assert "dropped the unnamed first column (pandas' index)" in result.output
    run = runs_of(client, project)["trainer_log"]
    assert series(client, project, run["id"]) == {
        "train/epoch": {"steps": [10, 20, 30], "values": [0.1, 0.2, 0.3]},
        "train/loss": {"steps": [10, 20, 30], "values": [0.5, 0.25, 0.125]},
    }

    # With no step column of its own, the index is the step.
    bare = tmp_path / "bare.csv"
    pd.DataFrame({"reward": [1.0, 2.0]}).to_csv(bare)
    result = invoke(project, live_server, "csv", str(bare))
    assert result.exit_code == 0, result.output
    assert "the unnamed first column (pandas' index) is the step" in result.output
    assert series(client, project, runs_of(client, project)["bare"]["id"]) == {"reward": {"steps": [0, 1], "values": [1.0, 2.0]}}

    # A step column that is not there is named in the refusal, and nothing is stored.
    result = invoke(project, live_server, "csv", str(path), "--step-column", "global_step", "--run-name", "other")
    assert result.exit_code == 1
    assert "no column 'global_step' for the step (found '(index)', 'train/global_step'" in result.output
    assert "other" not in runs_of(client, project)


# -- nested JSONL and --update ------------------------------------------------------------------


def history_jsonl(steps: range) -> str:
    lines = []
    for step in steps:
        row = {"_step": step, "_runtime": step * 1.5, "train": {"loss": 1 / (step + 1), "policy": {"kl": step * 1e-3}},
               "rollout": {"reward": step * 0.5}}  # fmt: skip
        if step == 0:
            row["samples"] = {"_type": "table-file", "path": "media/table/samples_0.table.json", "ncols": 3}
        lines.append(json.dumps(row))
    return "\n".join(lines) + "\n"


def test_nested_jsonl_is_flattened_and_update_extends_the_run_of_that_name(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    path = tmp_path / "wandb-history.jsonl"
    path.write_text(history_jsonl(range(3)))
    result = invoke(project, live_server, "jsonl", str(path), "--run-name", "grpo-v1")
    assert result.exit_code == 0, result.output
    assert "skipped (not numeric scalars): _runtime, samples" in result.output
    run_id = runs_of(client, project)["grpo-v1"]["id"]
    assert sorted(series(client, project, run_id)) == ["rollout/reward", "train/loss", "train/policy/kl"]

    # The run went on: the longer history, with --update, extends the same run.
    path.write_text(history_jsonl(range(6)))
    result = invoke(project, live_server, "jsonl", str(path), "--run-name", "grpo-v1", "--update")
    assert result.exit_code == 0, result.output
    assert f"in run {run_id} " in result.output
    assert list(runs_of(client, project)) == ["grpo-v1"]
    assert series(client, project, run_id)["train/policy/kl"] == {
        "steps": list(range(6)), "values": [s * 1e-3 for s in range(6)]}  # fmt: skip

    # The API's update finds it too.
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "jsonl", "run_name": "grpo-v1", "update": "true"},
                    content=history_jsonl(range(7)).encode(), headers=project.auth())  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["run"]["id"] == run_id and r.json()["created"] is False and r.json()["replaced"] == 18

    # Two runs of one name: --update refuses to choose, in the CLI and in the API.
    path.write_text(history_jsonl(range(2)))
    assert invoke(project, live_server, "jsonl", str(path), "--run-name", "grpo-v1").exit_code == 0  # a new source
    result = invoke(project, live_server, "jsonl", str(path), "--run-name", "grpo-v1", "--update")
    assert result.exit_code == 1 and "2 runs of project" in result.output and "named 'grpo-v1'" in result.output
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "jsonl", "run_name": "grpo-v1", "update": "true"},
                    content=history_jsonl(range(9)).encode(), headers=project.auth())  # fmt: skip
    assert r.status_code == 409 and "2 runs of project" in r.json()["detail"]


# -- TensorBoard ---------------------------------------------------------------------------------


@pytest.mark.parametrize("writer_class", [SummaryWriter, tensorboardX.SummaryWriter], ids=["torch", "tensorboardX"])
def test_add_scalars_and_add_hparams_make_one_run(
    writer_class, live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    logdir = tmp_path / "runs" / "grpo-lr3e-6"
    writer = writer_class(str(logdir))
    for step in range(20):
        writer.add_scalar("train/lr", 3e-6, step)
        writer.add_scalars("loss", {"train": 1 / (step + 1), "eval": 2 / (step + 1)}, step)
        writer.add_scalars("rl/clip", {"low": step * 0.01}, step)
    writer.add_hparams({"lr": 3e-6, "epsilon": 0.2, "loss_type": "grpo", "use_vllm": True}, {"hparam/reward": 0.75})
    writer.close()

    result = invoke(project, live_server, "tensorboard", str(tmp_path / "runs"), "--run-name", "grpo-lr3e-6")
    assert result.exit_code == 0, result.output
    assert "(add_scalars)" in result.output and "(add_hparams)" in result.output
    runs = runs_of(client, project)
    assert list(runs) == ["grpo-lr3e-6"]
    run = runs["grpo-lr3e-6"]
    assert run["config"] == {"lr": pytest.approx(3e-6), "epsilon": pytest.approx(0.2), "loss_type": "grpo", "use_vllm": True}
    got = series(client, project, run["id"])
    assert sorted(got) == ["hparam/reward", "loss/eval", "loss/train", "rl/clip/low", "train/lr"]
    assert got["loss/train"]["steps"] == list(range(20))
    assert got["loss/eval"]["values"][3] == pytest.approx(0.5)
    assert got["rl/clip/low"]["values"][10] == pytest.approx(0.1)
    assert got["hparam/reward"]["values"] == [0.75]

    # Imported again: the same one run.
    assert invoke(project, live_server, "tensorboard", str(logdir)).exit_code == 0
    assert list(runs_of(client, project)) == ["grpo-lr3e-6"]


def test_a_damaged_event_file_is_refused_unless_partial_is_allowed(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    logdir = tmp_path / "damaged"
    writer = SummaryWriter(str(logdir))
    for step in range(1530):
        writer.add_scalar("loss", math.cos(step), step)
    writer.close()
    (event_file,) = logdir.iterdir()
    data = bytearray(event_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    event_file.write_bytes(bytes(data))

    result = invoke(project, live_server, "tensorboard", str(logdir))
    assert result.exit_code == 1
    assert f"{event_file.name}: read " in result.output and "bytes are damaged" in result.output
    assert "nothing was imported" in result.output
    assert runs_of(client, project) == {}

    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "tensorboard"},
                    content=bytes(data), headers=project.auth())  # fmt: skip
    assert r.status_code == 422 and "damaged" in r.json()["detail"] and "allow_partial=true" in r.json()["detail"]
    assert runs_of(client, project) == {}

    result = invoke(project, live_server, "tensorboard", str(logdir), "--allow-partial")
    assert result.exit_code == 0, result.output
    assert "damaged, importing what was read" in result.output
    stored = series(client, project, runs_of(client, project)["damaged"]["id"])["loss"]
    assert 0 < len(stored["steps"]) < 1530
    assert stored["steps"] == list(range(len(stored["steps"])))


def test_a_chart_export_with_each_runs_own_step_column() -> None:
    """W&B adds ``"<run> - _step"`` columns when the chart's x-axis is not the step itself, or
    when asked: the run's own step is the step, and an x-axis ``Step`` is not a metric."""
    from backend.importers import read_csv_runs

    text = (
        '"epoch","a - _step","a - _step__MIN","a - _step__MAX","a - loss","a - loss__MIN","a - loss__MAX"\n'
        '"0.5","10","10","10","2","2","2"\n"1","20","20","20","1","1","1"\n'
    )
    (history,) = read_csv_runs(text.encode(), "export.csv")
    assert history.run_name == "a" and sorted(history.columns) == ["epoch", "loss"]
    assert history.columns["loss"].steps == [10, 20] and history.columns["epoch"].values == [0.5, 1.0]
    (history,) = read_csv_runs(text.replace('"epoch"', '"Step"').encode(), "export.csv")
    assert sorted(history.columns) == ["loss"] and history.columns["loss"].steps == [10, 20]


def test_the_api_refuses_a_step_column_it_cannot_use(client: TestClient, project: ProjectFixture) -> None:
    body = b"epoch,loss\n0,1\n1,2\n"
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "csv", "step_column": "iteration"},
                    content=body, headers=project.auth())  # fmt: skip
    assert r.status_code == 422 and "no column 'iteration' for the step (found 'epoch', 'loss')" in r.json()["detail"]
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "tensorboard", "step_column": "epoch"},
                    content=b"\x00", headers=project.auth())  # fmt: skip
    assert r.status_code == 422 and "TensorBoard events carry their own step" in r.json()["detail"]
    r = client.post(IMPORTS.format(slug=project.slug), params={"format": "csv", "step_column": "epoch"},
                    content=body, headers=project.auth())  # fmt: skip
    assert r.status_code == 201 and r.json()["keys"] == ["loss"]
    assert len(runs_of(client, project)) == 1

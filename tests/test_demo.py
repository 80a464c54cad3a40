"""``parityscope demo`` end to end: the four demo legs as a real job over HTTP, on SQLite."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from backend.cli import app as cli_app
from tests.conftest import free_port


@pytest.mark.slow
def test_demo_runs_the_paired_job_and_records_its_comparison(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    port = free_port()
    env = {"PARITYSCOPE_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}
    args = ["demo", "--steps", "2", "--no-serve", "--no-progress", "--port", str(port),
            "--database-url", f"sqlite:///{database}"]
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "job 1: 4 legs of 2 steps on the torch engine (reference, reference-replica, v1-initial, v1-fixed)" in out
    assert re.search(r"job 1 finished in \d+ s; saved comparison 1", out)
    assert f"comparison: http://127.0.0.1:{port}/compare?reference=1,2&candidates=3,4&ladder=2" in out
    # The ladder over v1-initial adopts the reference pair and v1-initial, and runs the rest.
    assert "ladder job 2 over v1-initial: 9 legs" in out
    assert "parity ladder over v1-initial (job 2):" in out
    rows = [line.split()[0:3] for line in out.splitlines() if line.startswith(("rung ", "ablation: "))]
    assert len(rows) == 6 + 5
    assert "rung 5: + lm_head_dtype" in out and "patch (engine settings):" in out
    token = out.strip().splitlines()[-1]
    assert token.startswith("pst_")
    # --no-serve stopped the server; the data stays in the database for `parityscope serve`.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)

    # A second demo is a second job in the same project, with a new token.
    again = CliRunner().invoke(cli_app, args, env=env)
    assert again.exit_code == 0, again.output
    assert "job 3 finished" in again.output and "compare?reference=14,15&candidates=16,17&ladder=4" in again.output


def test_demo_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli_app, ["demo", "--no-serve", "--port", str(port), "--database-url",
                                              f"sqlite:///{tmp_path / 'demo.db'}"])
    assert result.exit_code == 1
    assert f"port: the server could not start on http://127.0.0.1:{port}" in result.output

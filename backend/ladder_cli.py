"""``parityscope ladder``: a parity ladder from runs, its leg count, and with ``--wait`` the rung
table and the patch (docs/LADDER.md)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

__all__ = ["ladder", "ladder_lines"]

_CELL_METRICS = ("clip_rate", "kl", "entropy", "reward")


def _cell(verdict: dict[str, Any] | None) -> str:
    if not verdict or verdict.get("at_parity") is None:
        return "—"
    if verdict["at_parity"]:
        return "parity"
    return f"off@{verdict['first_divergence_step']}"


def ladder_lines(ladder: dict[str, Any]) -> list[str]:
    """The rung table, the ablation, the closing rung, the patch and the reading, as text."""
    lines = [f"{'row':<36} {'status':<9} " + " ".join(f"{m:>10}" for m in _CELL_METRICS)]
    closing = (ladder.get("closing") or {}).get("rung")
    for rung in ladder["rungs"]:
        name = f"rung {rung['index']}: " + ("candidate" if not rung["applied"] else "+ " + ", ".join(rung["applied"]))
        mark = "  ← closes" if rung["index"] == closing else ""
        lines.append(f"{name:<36} {rung['status']:<9} "
                     + " ".join(f"{_cell(rung['metrics'].get(m)):>10}" for m in _CELL_METRICS) + mark)
    for leg in ladder["ablation"]:
        name = f"ablation: {leg['setting']} alone"
        lines.append(f"{name:<36} {leg['status']:<9} "
                     + " ".join(f"{_cell(leg['metrics'].get(m)):>10}" for m in _CELL_METRICS))
    lines.append("")
    lines += ladder["interpretation"]
    patch = ladder.get("patch")
    if patch:
        lines.append("patch (engine settings): " + json.dumps(patch["engine_settings"]))
        vllm = patch.get("vllm")
        if vllm and "engine_args" in vllm:
            lines.append(f"patch ({vllm['engine']} engine arguments): "
                         + ", ".join(f"{k}={v!r}" for k, v in vllm["engine_args"].items()))
            if vllm.get("weight_update_calls"):
                lines.append("patch (AsyncLLM weight update): " + json.dumps(vllm["weight_update_calls"]))
    return lines


def ladder(
    reference: Annotated[str, typer.Option("--reference", help="reference run id(s), comma-separated")],
    candidate: Annotated[int, typer.Option("--candidate", help="the candidate run id")],
    url: Annotated[str, typer.Option("--url", envvar="PARITYSCOPE_URL")] = "http://127.0.0.1:8000",
    token: Annotated[str, typer.Option("--token", envvar="PARITYSCOPE_TOKEN", help="a project write token")] = "",
    wait: Annotated[bool, typer.Option("--wait", help="wait for the legs, then print the rungs and the patch")] = False,
    ablation: Annotated[bool, typer.Option("--ablation/--no-ablation", help="single-setting ablation legs")] = True,
    stop_at_parity: Annotated[bool, typer.Option("--stop-at-parity", help="skip the rungs after one at parity")] = False,
    max_legs: Annotated[int, typer.Option(min=1, max=32, help="refuse a ladder that needs more legs")] = 16,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the leg count only; start nothing")] = False,
) -> None:
    """Bisect a diverging candidate: rerun it one reference setting at a time (needs workers)."""
    from parityscope.connection import ClientError
    from workers.job_loop import job_connection

    if not token:
        typer.echo("error: token: give --token or set PARITYSCOPE_TOKEN", err=True)
        raise typer.Exit(code=1)
    try:
        references = [int(part) for part in reference.split(",") if part.strip()]
    except ValueError:
        typer.echo(f"error: --reference: {reference!r} is not a list of run ids", err=True)
        raise typer.Exit(code=1) from None
    api = job_connection(url, token)
    body = {"reference": references, "candidate": candidate, "ablation": ablation,
            "stop_at_parity": stop_at_parity, "max_legs": max_legs}
    try:
        if dry_run:
            plan = api.ladder({**body, "dry_run": True})
            typer.echo(f"{plan['leg_count']} legs")
            return
        job = api.ladder(body)
        typer.echo(f"ladder job {job['id']} in project {job['project']}: {job['ladder']['leg_count']} legs")
        while wait and job["status"] in ("queued", "running"):
            time.sleep(2)
            job = api.job(job["id"])
        if wait:
            typer.echo(f"job {job['id']}: {job['status']}")
            for line in ladder_lines(job["ladder"]):
                typer.echo(line)
            if job["status"] != "finished":
                raise typer.Exit(code=1)
    except ClientError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        api.close()

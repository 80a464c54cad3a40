"""GET /api/v1/compare and saved comparisons, through HTTP on both databases."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from backend.compare.encoding import decode_typed_array
from backend.db import Database
from backend.models import MetricPointRow
from tests.compare.synthetic_runs import PLANTED_STEP, demo_runs
from tests.conftest import ProjectFixture, make_project


def _wire(values) -> list:
    return [v if math.isfinite(v) else ("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))
            for v in values.tolist()]


def post_run(client: TestClient, project: ProjectFixture, run) -> int:
    created = client.post(
        f"/api/v1/projects/{project.slug}/runs",
        json={"name": run.name, "label": run.label, "config": dict(run.config), "engine": dict(run.engine)},
        headers=project.auth(),
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    for key, (steps, values) in run.series.items():
        r = client.post(
            f"/api/v1/runs/{run_id}/metrics",
            content=orjson.dumps({"steps": steps.tolist(), "values": {key: _wire(values)}}),
            headers=project.auth() | {"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
    return run_id


@pytest.fixture
def demo_ids(client: TestClient, project: ProjectFixture) -> dict[str, int]:
    return {name: post_run(client, project, run) for name, run in demo_runs().items()}


def test_compare_finds_the_demo_story(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    r = client.get(
        "/api/v1/compare",
        params={
            "reference": f"{demo_ids['reference']},{demo_ids['reference-replica']}",
            "candidates": f"{demo_ids['v1-initial']},{demo_ids['v1-fixed']}",
        },
        headers=project.auth("read"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["metrics"]) == ["clip_rate", "kl", "entropy", "reward"]
    initial, fixed = str(demo_ids["v1-initial"]), str(demo_ids["v1-fixed"])
    for metric in ("clip_rate", "kl"):
        m = body["metrics"][metric]
        assert m["band"]["source"] == "replicas"
        assert m["resolved"][initial] == f"rl/{'clamp_log_ratio_new_old_indicator' if metric == 'clip_rate' else 'kl_new_old'}"
        step = m["candidates"][initial]["first_divergence_step"]
        assert step is not None and PLANTED_STEP <= step <= PLANTED_STEP + 5
        assert m["candidates"][fixed]["first_divergence_step"] is None
    assert body["diagnosis"][initial]["starting_layer"] == "semantic"
    assert body["diagnosis"][fixed]["starting_layer"] is None or body["diagnosis"][fixed]["starting_layer"] != "semantic"
    layers = {d["key"].rsplit(".", 1)[-1]: d["layer"] for d in body["config_diff"][initial]}
    assert layers["logprobs_mode"] == "semantic"
    assert layers["prefix_caching"] == "inference-path"
    overlay = body["figures"]["clip_rate"]["overlay"]
    assert {"data", "layout"} <= set(overlay)
    assert body["runs"][initial]["role"] == "candidate"


def test_compare_downsamples_and_smooths(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    params = {"reference": demo_ids["reference"], "candidates": demo_ids["v1-fixed"], "metrics": "reward",
              "max_points": 50, "smoothing": 0.9}
    body = client.get("/api/v1/compare", params=params, headers=project.auth("read")).json()
    series = body["metrics"]["reward"]["series"]
    assert all(len(s["x"]) <= 50 and s["downsampled"] for s in series)
    assert body["metrics"]["reward"]["band"]["source"] == "within-run"
    assert body["settings"]["smoothing"] == 0.9


def test_saved_comparison_round_trip(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    body = {"name": "V0 vs V1", "reference": [demo_ids["reference"], demo_ids["reference-replica"]],
            "candidates": [demo_ids["v1-initial"]], "options": {"smoothing": 0.6}}
    r = client.post("/api/v1/comparisons", json=body, headers=project.auth())
    assert r.status_code == 201, r.text
    saved = client.get(f"/api/v1/comparisons/{r.json()['id']}", headers=project.auth("read")).json()
    assert saved["reference"] == body["reference"] and saved["options"] == {"smoothing": 0.6}
    listed = client.get(f"/api/v1/projects/{project.slug}/comparisons", headers=project.auth("read")).json()
    assert [c["name"] for c in listed] == ["V0 vs V1"]
    assert client.post("/api/v1/comparisons", json=body, headers=project.auth("read")).status_code == 403
    # A run given twice is refused, as by GET /api/v1/compare, and nothing is saved.
    twice = dict(body, reference=[demo_ids["reference"], demo_ids["reference"]])
    r = client.post("/api/v1/comparisons", json=twice, headers=project.auth())
    assert r.status_code == 422 and "reference" in r.json()["detail"], r.text
    assert len(client.get(f"/api/v1/projects/{project.slug}/comparisons", headers=project.auth("read")).json()) == 1


def test_comparison_options_nested_too_deep_are_refused(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    options: dict = {"leaf": 1}
    for _ in range(300):
        options = {"a": options}
    body = {"name": "deep", "reference": [run_id], "options": options}
    r = client.post("/api/v1/comparisons", json=body, headers=project.auth())
    assert r.status_code == 422 and r.json()["detail"].startswith("options"), r.text
    assert client.get(f"/api/v1/projects/{project.slug}/comparisons", headers=project.auth()).json() == []


def test_project_aliases_and_rules_feed_the_comparison(client: TestClient, project: ProjectFixture) -> None:
    ids = []
    for i, lr in enumerate((1e-3, 1e-3)):
        run = client.post(f"/api/v1/projects/{project.slug}/runs",
                          json={"name": f"r{i}", "config": {"my_knob": i, "lr": lr}}, headers=project.auth()).json()
        client.post(f"/api/v1/runs/{run['id']}/metrics",
                    json={"steps": list(range(30)), "values": {"house/clip": [0.1] * 30}}, headers=project.auth())
        ids.append(run["id"])
    r = client.post(f"/api/v1/projects/{project.slug}/aliases", json={"alias": "house/clip", "canonical": "clip_rate"},
                    headers=project.auth())
    assert r.status_code == 201 and r.json()["project"] == {"clip_rate": ["house/clip"]}
    r = client.post(f"/api/v1/projects/{project.slug}/config-rules", json={"key": "my_knob", "layer": "objective"},
                    headers=project.auth())
    assert r.status_code == 201
    body = client.get("/api/v1/compare", params={"reference": ids[0], "candidates": ids[1], "metrics": "clip_rate"},
                      headers=project.auth("read")).json()
    assert body["metrics"]["clip_rate"]["resolved"][str(ids[1])] == "house/clip"
    assert [(d["key"], d["layer"]) for d in body["config_diff"][str(ids[1])]] == [("my_knob", "objective")]
    classified = client.get(f"/api/v1/projects/{project.slug}/config-rules/classify",
                            params={"keys": "my_knob,vllm_config.vllm_kwargs.logprobs-mode"},
                            headers=project.auth("read")).json()
    assert [c["layer"] for c in classified] == ["objective", "semantic"]
    r = client.post(f"/api/v1/projects/{project.slug}/config-rules", json={"key": "x", "layer": "vibes"},
                    headers=project.auth())
    assert r.status_code == 422 and "layer" in r.json()["detail"]
    r = client.post(f"/api/v1/projects/{project.slug}/aliases", json={"alias": "a", "canonical": "Clip Rate"},
                    headers=project.auth())
    assert r.status_code == 422 and "canonical" in r.json()["detail"]


def test_bad_compare_requests(client: TestClient, database: Database, project: ProjectFixture, demo_ids) -> None:
    auth = project.auth("read")
    ref = demo_ids["reference"]
    cand = demo_ids["v1-initial"]

    def status(params: dict) -> tuple[int, str]:
        r = client.get("/api/v1/compare", params=params, headers=auth)
        return r.status_code, r.json().get("detail", "")

    assert status({"reference": "999999"}) == (404, "run 999999 not found")
    code, detail = status({"reference": "abc"})
    assert code == 422 and "reference" in detail
    code, detail = status({"reference": ref, "candidates": cand, "max_points": 0})
    assert code == 422 and "max_points" in detail
    code, detail = status({"reference": ref, "candidates": cand, "max_points": 10**9})
    assert code == 422 and "max_points" in detail
    code, detail = status({"reference": ref, "candidates": cand, "metrics": "no_such_metric"})
    assert code == 422 and "no_such_metric" in detail
    code, detail = status({"reference": ref, "candidates": cand, "smoothing": 1.0})
    assert code == 422 and "smoothing" in detail
    code, detail = status({"reference": ref, "candidates": ref})
    assert code == 422 and "also a reference" in detail

    other = make_project(database, "other")
    foreign = client.post(f"/api/v1/projects/{other.slug}/runs", json={"name": "theirs"}, headers=other.auth()).json()
    # With this project's token the other project's run is off limits...
    code, _ = status({"reference": ref, "candidates": foreign["id"]})
    assert code == 403
    # ...and even an admin cannot mix projects in one comparison.
    r = client.get("/api/v1/compare", params={"reference": ref, "candidates": foreign["id"]}, headers=project.auth("admin"))
    assert r.status_code == 422 and "one project" in r.json()["detail"]
    assert client.get("/api/v1/compare", params={"reference": ref}).status_code == 401


def test_include_trims_data_arrays(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    params = {"reference": f"{demo_ids['reference']},{demo_ids['reference-replica']}",
              "candidates": demo_ids["v1-initial"], "metrics": "kl"}
    full = client.get("/api/v1/compare", params=params, headers=project.auth("read")).json()
    lean = client.get("/api/v1/compare", params=params | {"include": "overlay"}, headers=project.auth("read")).json()
    assert set(full["figures"]["kl"]) == {"overlay", "diff"}
    assert set(lean["figures"]["kl"]) == {"overlay"}
    assert lean["figures"]["kl"]["overlay"] == full["figures"]["kl"]["overlay"]
    assert "y" not in lean["metrics"]["kl"]["series"][0] and "y" in full["metrics"]["kl"]["series"][0]
    cand = str(demo_ids["v1-initial"])
    # Summaries stay: the divergence step and the diagnosis do not depend on the sections.
    assert lean["metrics"]["kl"]["candidates"][cand]["first_divergence_step"] == \
        full["metrics"]["kl"]["candidates"][cand]["first_divergence_step"]
    assert lean["diagnosis"] == full["diagnosis"]
    r = client.get("/api/v1/compare", params=params | {"include": "overlay,pictures"}, headers=project.auth("read"))
    assert r.status_code == 422 and "pictures" in r.json()["detail"]


def test_compare_is_gzipped_for_clients_that_accept_it(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    r = client.get("/api/v1/compare", params={"reference": demo_ids["reference"]},
                   headers=project.auth("read") | {"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.json()["references"] == [demo_ids["reference"]]


def test_cache_follows_new_points(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    params = {"reference": demo_ids["reference"], "metrics": "reward", "include": "series"}
    before = client.get("/api/v1/compare", params=params, headers=project.auth("read")).json()
    last = before["metrics"]["reward"]["series"][0]["x"][-1]
    r = client.post(f"/api/v1/runs/{demo_ids['reference']}/metrics",
                    json={"steps": [last + 1], "values": {"rl/reward": [0.5]}}, headers=project.auth())
    assert r.status_code == 200
    after = client.get("/api/v1/compare", params=params, headers=project.auth("read")).json()
    assert after["metrics"]["reward"]["series"][0]["x"][-1] == last + 1


def test_run_ids_that_are_not_ascii_digits_are_refused(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    # '²' and '٣' pass str.isdigit(); only the first is refused by int(), and neither is a run id.
    for raw in ("²", f"{run_id},٣"):
        r = client.get("/api/v1/compare", params={"reference": raw}, headers=project.auth("read"))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "reference"
        r = client.get("/api/v1/notes", params={"runs": raw}, headers=project.auth("read"))
        assert r.status_code == 422 and r.json()["field"] == "runs"


def test_partial_compares_what_is_valid_and_names_the_rest(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    auth = project.auth("read")
    ref, replica, cand = demo_ids["reference"], demo_ids["reference-replica"], demo_ids["v1-initial"]
    params = {
        "reference": f"{ref},{replica},999998",
        "candidates": f"{cand},999999",
        "metrics": "kl,no_such_metric,reward",
        "include": "overlay",
    }
    # Strict by default, as documented for API clients: the first unknown run fails the request...
    strict = client.get("/api/v1/compare", params=params, headers=auth)
    assert strict.status_code == 404 and strict.json()["detail"] == "run 999998 not found"
    # ...and the dashboard's partial request draws the valid runs and metrics and names the others.
    r = client.get("/api/v1/compare", params=params | {"partial": "true"}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["references"] == [ref, replica] and body["candidates"] == [cand]
    assert list(body["metrics"]) == ["kl", "reward"] and set(body["figures"]) == {"kl", "reward"}
    assert body["missing"] == [
        {"kind": "run", "id": 999998, "role": "reference", "detail": "run 999998 not found"},
        {"kind": "run", "id": 999999, "role": "candidate", "detail": "run 999999 not found"},
        {"kind": "metric", "name": "no_such_metric", "detail": "unknown metric 'no_such_metric': no run has it"},
    ]
    assert body["project"] == project.slug
    # Nothing missing: an empty list. Strict responses carry no `missing` at all.
    clean = client.get("/api/v1/compare", params={"reference": ref, "partial": "true", "include": "overlay"}, headers=auth)
    assert clean.status_code == 200 and clean.json()["missing"] == []
    assert "missing" not in client.get("/api/v1/compare", params={"reference": ref, "include": "overlay"}, headers=auth).json()


def test_partial_still_refuses_what_cannot_be_compared(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    auth = project.auth("read")
    ref, cand = demo_ids["reference"], demo_ids["v1-initial"]

    def status(params: dict) -> tuple[int, str]:
        r = client.get("/api/v1/compare", params=params | {"partial": "true"}, headers=auth)
        return r.status_code, r.json().get("detail", "")

    # No known reference: nothing to compare against.
    assert status({"reference": "999998", "candidates": cand}) == (404, "run 999998 not found")
    # An impossible selection keeps its 422 and its reason.
    assert status({"reference": ref, "candidates": ref}) == (422, f"candidates: run {ref} is also a reference")
    code, detail = status({"reference": ref, "smoothing": 2})
    assert code == 422 and "smoothing" in detail
    r = client.get("/api/v1/compare", params={"reference": ref, "partial": "maybe"}, headers=auth)
    assert r.status_code == 422
    assert client.get("/api/v1/compare", params={"reference": ref, "partial": "true"}).status_code == 401


# -- relative wall time -------------------------------------------------------------------------

T0 = 1_750_000_000.25


def post_timed_run(client: TestClient, project: ProjectFixture, run, seconds_per_step: float) -> int:
    """``run`` with every key of a step logged at ``T0 + seconds_per_step · step``, in one request."""
    created = client.post(f"/api/v1/projects/{project.slug}/runs",
                          json={"name": run.name, "config": dict(run.config), "engine": dict(run.engine)},
                          headers=project.auth())
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    steps = next(iter(run.series.values()))[0]
    assert all(np.array_equal(s, steps) for s, _ in run.series.values())
    body = {"steps": steps.tolist(), "values": {key: _wire(values) for key, (_, values) in run.series.items()},
            "times": (T0 + seconds_per_step * steps).tolist()}
    r = client.post(f"/api/v1/runs/{run_id}/metrics", content=orjson.dumps(body),
                    headers=project.auth() | {"content-type": "application/json"})
    assert r.status_code == 200, r.text
    return run_id


def _times_of(body: dict, run_id: int) -> dict[int, float]:
    entry = body["runs"][str(run_id)]["wall_time"]
    assert entry is not None and len(entry["steps"]) == len(entry["seconds"])
    return dict(zip(entry["steps"], entry["seconds"], strict=True))


def test_wall_time_at_the_drawn_steps_mixed_selection(client: TestClient, project: ProjectFixture) -> None:
    runs = demo_runs()
    rates = {"reference": 2.0, "reference-replica": 3.0, "v1-initial": 2.5}
    ids = {name: post_timed_run(client, project, runs[name], rate) for name, rate in rates.items()}
    # Posted without times: the server stamps each request's points with the time it received them.
    ids["v1-fixed"] = post_run(client, project, runs["v1-fixed"])
    params = {"reference": f"{ids['reference']},{ids['reference-replica']}",
              "candidates": f"{ids['v1-initial']},{ids['v1-fixed']}", "max_points": 60, "smoothing": 0.5}
    r = client.get("/api/v1/compare", params=params, headers=project.auth("read"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["runs"][str(ids["v1-fixed"])]["wall_time"] is None
    for name, rate in rates.items():
        assert body["runs"][str(ids[name])]["wall_time"]["origin"] == T0
        times = _times_of(body, ids[name])
        # Downsampled and smoothed lines (and the faint unsmoothed ones) across four panels draw
        # far more distinct steps than max_points: at most max_points of them are looked up,
        # spread over the drawn ones, plus the markers'.
        lines = {
            x
            for figures in body["figures"].values()
            for trace in figures["overlay"]["data"]
            if trace.get("legendgroup") == str(ids[name])
            for x in decode_typed_array(trace["x"]).tolist()
        }
        markers = {m["step"] for entry in body["metrics"].values() for m in entry["markers"] if m["run_id"] == ids[name]}
        assert bool(markers) == (name == "v1-initial")
        assert len(lines) > 60 and markers <= set(times) <= lines | markers, name
        assert 50 <= len(times) <= 60 + len(markers), name
        assert min(times) == min(lines) and max(times) == max(lines)
        for step, seconds in times.items():
            assert seconds == pytest.approx(rate * step, abs=1e-3), (name, step)
    # With max_points above the drawn steps, every drawn step has its time.
    body = client.get("/api/v1/compare", params=params | {"max_points": 2000, "smoothing": 0},
                      headers=project.auth("read")).json()
    for name, rate in rates.items():
        assert _times_of(body, ids[name]) == pytest.approx({step: rate * step for step in range(200)}, abs=1e-3)


def test_wall_time_is_null_for_runs_without_one(client: TestClient, database: Database, project: ProjectFixture) -> None:
    runs = demo_runs()
    timed = post_timed_run(client, project, runs["reference"], 1.0)
    stamped = post_run(client, project, runs["v1-fixed"])
    cleared = post_timed_run(client, project, runs["v1-initial"], 1.0)
    with database.session() as session:
        session.execute(update(MetricPointRow).where(MetricPointRow.run_id == cleared).values(wall_time=None))
    r = client.get("/api/v1/compare", params={"reference": timed, "candidates": f"{stamped},{cleared}",
                                               "include": "overlay,wall_time"}, headers=project.auth("read"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["runs"][str(stamped)]["wall_time"] is None
    assert body["runs"][str(cleared)]["wall_time"] is None
    assert _times_of(body, timed)[100] == 100.0


def test_wall_time_is_a_section_and_a_bad_one_is_named(client: TestClient, project: ProjectFixture) -> None:
    run_id = post_timed_run(client, project, demo_runs()["reference"], 1.0)
    auth = project.auth("read")
    lean = client.get("/api/v1/compare", params={"reference": run_id, "include": "overlay"}, headers=auth).json()
    assert "wall_time" not in lean["runs"][str(run_id)]
    timed = client.get("/api/v1/compare", params={"reference": run_id, "include": "overlay,wall_time"},
                       headers=auth).json()
    assert _times_of(timed, run_id)[0] == 0.0
    assert timed["figures"] == lean["figures"]
    r = client.get("/api/v1/compare", params={"reference": run_id, "include": "overlay,walltime"}, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "include"
    assert "'walltime'" in r.json()["detail"] and "wall_time" in r.json()["detail"]


def test_wall_time_over_a_long_window_follows_what_is_drawn(client: TestClient, project: ProjectFixture) -> None:
    steps = np.arange(40_000)
    values = np.sin(steps / 500.0)
    ids = []
    for name, rate in (("long-a", 0.5), ("long-b", 0.25)):
        created = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": name}, headers=project.auth())
        run_id = created.json()["id"]
        body = {"steps": steps.tolist(), "values": {"rl/reward": values.tolist()},
                "times": (T0 + 7.0 + rate * steps).tolist()}
        r = client.post(f"/api/v1/runs/{run_id}/metrics", content=orjson.dumps(body),
                        headers=project.auth() | {"content-type": "application/json"})
        assert r.status_code == 200, r.text
        ids.append(run_id)
    r = client.get("/api/v1/compare", params={"reference": ids[0], "candidates": ids[1], "metrics": "reward",
                                               "max_points": 200}, headers=project.auth("read"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["settings"]["resolution"] == "summaries"
    for run_id, rate in zip(ids, (0.5, 0.25), strict=True):
        times = _times_of(body, run_id)
        (series,) = [s for s in body["metrics"]["reward"]["series"] if s["run_id"] == run_id]
        # One time per drawn step (and marker), about max_points of them: never the run's length.
        assert set(series["x"]) <= set(times) and len(times) <= len(series["x"]) + 1 <= 201
        assert body["runs"][str(run_id)]["wall_time"]["origin"] == T0 + 7.0
        for step in series["x"]:
            assert times[step] == pytest.approx(rate * step, abs=1e-3)
    # A zoomed window reads full resolution and keeps the run's origin.
    r = client.get("/api/v1/compare", params={"reference": ids[0], "metrics": "reward", "start": 30_000,
                                               "end": 30_100}, headers=project.auth("read"))
    body = r.json()
    assert body["settings"]["resolution"] == "points"
    assert _times_of(body, ids[0]) == {s: 0.5 * s for s in range(30_000, 30_101)}

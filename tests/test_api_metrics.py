from __future__ import annotations

import math

import orjson
from fastapi.testclient import TestClient

from tests.conftest import ProjectFixture


def post(client: TestClient, project: ProjectFixture, run_id: int, body, **kw):
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(
        f"/api/v1/runs/{run_id}/metrics",
        content=content,
        headers=project.auth() | {"content-type": "application/json"},
        **kw,
    )


def read(client: TestClient, project: ProjectFixture, run_id: int, **params) -> dict:
    r = client.get(f"/api/v1/runs/{run_id}/metrics", params=params, headers=project.auth("read"))
    assert r.status_code == 200, r.text
    return r.json()


def test_rows_form_round_trip(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    body = {
        "points": [
            {"step": 0, "values": {"reward": 0.1, "kl_new_old": "NaN"}, "time": 1732600000.5},
            {"step": 1, "values": {"reward": 0.25, "kl_new_old": 1e-300}},
        ]
    }
    r = post(client, project, run_id, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 4, "replaced": 0}
    got = read(client, project, run_id)
    assert got == {
        "kl_new_old": {"steps": [0, 1], "values": ["NaN", 1e-300]},
        "reward": {"steps": [0, 1], "values": [0.1, 0.25]},
    }


def test_columns_form_with_nulls(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    body = {"steps": [0, 1, 2], "values": {"reward": [0.5, None, 0.7], "entropy": [1, 2, 3]}, "times": [1, 2, 3]}
    r = post(client, project, run_id, body)
    assert r.json() == {"accepted": 5, "replaced": 0}
    got = read(client, project, run_id, keys="reward")
    assert got == {"reward": {"steps": [0, 2], "values": [0.5, 0.7]}}


def test_ten_thousand_points_with_non_finite_values_round_trip_exactly(
    client: TestClient, project: ProjectFixture, run_id: int
) -> None:
    specials = ["NaN", "Infinity", "-Infinity"]
    steps = list(range(10_000))
    values = [specials[i % 3] if i % 10 == 0 else math.sin(i) * 10 ** (i % 7 - 3) for i in steps]
    r = post(client, project, run_id, {"steps": steps, "values": {"clip": values}})
    assert r.json() == {"accepted": 10_000, "replaced": 0}
    got = read(client, project, run_id)["clip"]
    assert got["steps"] == steps
    assert got["values"] == values  # floats compare bit-exactly after the JSON round trip


def test_repost_replaces_and_counts(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    post(client, project, run_id, {"steps": [0, 1, 2], "values": {"reward": [1, 2, 3]}})
    r = post(client, project, run_id, {"steps": [2, 3], "values": {"reward": ["Infinity", 4]}})
    assert r.json() == {"accepted": 2, "replaced": 1}
    # The same request again is idempotent: nothing new, everything replaced.
    r = post(client, project, run_id, {"steps": [2, 3], "values": {"reward": ["Infinity", 4]}})
    assert r.json() == {"accepted": 2, "replaced": 2}
    got = read(client, project, run_id)["reward"]
    assert got == {"steps": [0, 1, 2, 3], "values": [1.0, 2.0, "Infinity", 4.0]}


def test_duplicate_step_in_one_request_keeps_the_last(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    body = {"points": [{"step": 5, "values": {"r": 1}}, {"step": 5, "values": {"r": 2}}]}
    assert post(client, project, run_id, body).json() == {"accepted": 1, "replaced": 0}
    assert read(client, project, run_id)["r"] == {"steps": [5], "values": [2.0]}


def test_range_and_keys_endpoint(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    post(client, project, run_id, {"steps": list(range(10)), "values": {"a": list(range(10))}})
    post(client, project, run_id, {"steps": [3, 4], "values": {"b": [1, 2]}})
    assert read(client, project, run_id, keys="a", start=2, end=4)["a"]["steps"] == [2, 3, 4]
    keys = client.get(f"/api/v1/runs/{run_id}/keys", headers=project.auth("read")).json()
    assert keys == [
        {"key": "a", "count": 10, "first_step": 0, "last_step": 9},
        {"key": "b", "count": 2, "first_step": 3, "last_step": 4},
    ]
    run = client.get(f"/api/v1/runs/{run_id}", headers=project.auth("read")).json()
    assert run["last_step"] == 9


def test_finished_run_accepts_late_points(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    client.patch(f"/api/v1/runs/{run_id}", json={"status": "finished"}, headers=project.auth())
    assert post(client, project, run_id, {"steps": [99], "values": {"reward": [1]}}).status_code == 200


def _assert_nothing_stored(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    assert read(client, project, run_id) == {}
    assert client.get(f"/api/v1/runs/{run_id}/keys", headers=project.auth("read")).json() == []


def test_bad_inputs_are_named_and_store_nothing(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    cases = [
        (b"{not json", 422, "JSON"),
        ([1, 2], 422, "object"),
        ({"nothing": 1}, 422, "points"),
        ({"points": [{"step": 0, "values": {"r": 1}}, {"step": -1, "values": {"r": 1}}]}, 422, "points[1].step"),
        ({"points": [{"step": 0, "values": {"r": 1}}, {"step": 1.5, "values": {"r": 1}}]}, 422, "points[1].step"),
        ({"points": [{"step": 2**53 + 1, "values": {"r": 1}}]}, 422, "2^53"),
        ({"points": [{"step": 0, "values": {"r": "nan"}}]}, 422, "points[0].values.r"),
        ({"points": [{"step": 0, "values": {"r": True}}]}, 422, "boolean"),
        ({"points": [{"step": 0, "values": {"r": [1]}}]}, 422, "points[0].values.r"),
        ({"points": [{"step": 0, "values": {"x" * 251: 1}}]}, 422, "250"),
        ({"points": [{"step": 0, "values": {"bad\nkey": 1}}]}, 422, "non-printable"),
        ({"points": [{"step": 0, "values": {"": 1}}]}, 422, "non-empty"),
        ({"points": [{"step": 0, "values": {"r": 1}, "time": "noon"}]}, 422, "points[0].time"),
        ({"steps": [0, 1], "values": {"r": [1]}}, 422, "values.r"),
        ({"steps": [0, 1], "values": {"r": [1, 2]}, "times": [1]}, 422, "times"),
        ({"steps": [0, "one"], "values": {"r": [1, 2]}}, 422, "steps[1]"),
        ({"steps": [0], "values": {"r": [1]}, "extra": 1}, 422, "extra"),
    ]
    for body, status, needle in cases:
        r = post(client, project, run_id, body)
        assert r.status_code == status, (body, r.text)
        assert needle in r.json()["detail"], (needle, r.json())
    _assert_nothing_stored(client, project, run_id)


def test_size_limits(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    too_many = {"steps": list(range(50_001)), "values": {"a": [0] * 50_001, "b": [0] * 50_001}}
    r = post(client, project, run_id, too_many)
    assert r.status_code == 413 and "100000" in r.json()["detail"]
    rows = {"points": [{"step": i, "values": {"a": 1, "b": 2}} for i in range(50_001)]}
    r = post(client, project, run_id, rows)
    assert r.status_code == 413
    huge = b'{"points": [' + b" " * (16 * 1024 * 1024) + b"]}"
    r = post(client, project, run_id, huge)
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    _assert_nothing_stored(client, project, run_id)


def test_unknown_run_and_auth(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    assert post(client, project, 424242, {"steps": [0], "values": {"r": [1]}}).status_code == 404
    r = client.post(f"/api/v1/runs/{run_id}/metrics", json={"steps": [0], "values": {"r": [1]}})
    assert r.status_code == 401
    r = client.post(
        f"/api/v1/runs/{run_id}/metrics", json={"steps": [0], "values": {"r": [1]}}, headers=project.auth("read")
    )
    assert r.status_code == 403
    assert client.get(f"/api/v1/runs/{run_id}/metrics").status_code == 401
    r = client.get(f"/api/v1/runs/{run_id}/metrics", params={"start": 5, "end": 1}, headers=project.auth("read"))
    assert r.status_code == 422 and "start" in r.json()["detail"]
    _assert_nothing_stored(client, project, run_id)


def test_rejected_request_after_valid_points_leaves_earlier_data(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    post(client, project, run_id, {"steps": [0], "values": {"r": [1]}})
    bad = {"points": [{"step": 1, "values": {"r": 2}}, {"step": 2, "values": {"r": "oops"}}]}
    assert post(client, project, run_id, bad).status_code == 422
    assert read(client, project, run_id) == {"r": {"steps": [0], "values": [1.0]}}

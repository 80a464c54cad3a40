"""The command line, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import free_port, wait_for_http

CLI = [sys.executable, "-m", "backend.cli"]


def run_cli(*args: str, url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PARITYSCOPE_DATABASE_URL": url}
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_tokens_from_the_cli_work_against_the_api(database_url: str) -> None:
    run_cli("db", "upgrade", url=database_url)
    admin = run_cli("token", "create", "--scope", "admin", url=database_url).stdout.strip().splitlines()[-1]
    assert admin.startswith("pst_")

    port = free_port()
    env = os.environ | {"PARITYSCOPE_DATABASE_URL": database_url}
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/healthz")
        r = httpx.post(base + "/api/v1/projects", json={"slug": "cli", "name": "CLI"},
                       headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 201, r.text
        out = run_cli("token", "create", "--project", "cli", "--scope", "write", url=database_url).stdout
        token_id = int(out.splitlines()[0].split()[1].rstrip(":"))
        write = out.strip().splitlines()[-1]
        auth = {"Authorization": f"Bearer {write}"}
        assert httpx.post(base + "/api/v1/projects/cli/runs", json={"name": "x"}, headers=auth).status_code == 201
        run_cli("token", "revoke", str(token_id), url=database_url)
        assert httpx.post(base + "/api/v1/projects/cli/runs", json={"name": "y"}, headers=auth).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_cli_bad_input(database_url: str) -> None:
    run_cli("db", "upgrade", url=database_url)
    r = run_cli("token", "create", "--scope", "write", url=database_url, check=False)
    assert r.returncode == 1 and "needs a project" in r.stderr
    r = run_cli("token", "create", "--project", "missing", "--scope", "read", url=database_url, check=False)
    assert r.returncode == 1 and "not found" in r.stderr
    r = run_cli("token", "revoke", "9999", url=database_url, check=False)
    assert r.returncode == 1 and "not found" in r.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_serve_refuses_a_stale_postgresql(database_url: str) -> None:
    from backend.db import make_engine

    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")
    engine.dispose()
    env = os.environ | {"PARITYSCOPE_DATABASE_URL": database_url}
    r = subprocess.run([*CLI, "serve", "--port", str(free_port())], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert "parityscope db upgrade" in r.stderr


def test_serve_listens_where_the_settings_say(database_url: str) -> None:
    run_cli("db", "upgrade", url=database_url)
    port = free_port()
    env = os.environ | {
        "PARITYSCOPE_DATABASE_URL": database_url,
        "PARITYSCOPE_HOST": "127.0.0.1",
        "PARITYSCOPE_PORT": str(port),
    }
    server = subprocess.Popen([*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # A loaded machine can take a while to import the app; a server that died says why.
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
    except TimeoutError:
        server.terminate()
        raise AssertionError(server.communicate(timeout=10)[1]) from None
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_serve_refuses_a_port_that_is_not_one(database_url: str) -> None:
    env = os.environ | {"PARITYSCOPE_DATABASE_URL": database_url, "PARITYSCOPE_PORT": "eighty"}
    result = subprocess.run([*CLI, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "PARITYSCOPE_PORT" in result.stderr and "Traceback" not in result.stderr


def test_project_create_and_list(database_url: str) -> None:
    run_cli("db", "upgrade", url=database_url)
    out = run_cli("project", "create", "gspo-v1", "--name", "GSPO on vLLM V1", url=database_url).stdout
    assert "gspo-v1 (GSPO on vLLM V1)" in out
    run_cli("project", "create", "bare", url=database_url)
    listed = run_cli("project", "list", url=database_url).stdout.splitlines()
    assert [line.split("\t")[1:] for line in listed] == [["bare", "bare"], ["gspo-v1", "GSPO on vLLM V1"]]
    # The project takes tokens and runs like one made over the API.
    token = run_cli("token", "create", "--project", "gspo-v1", "--scope", "write", url=database_url).stdout
    assert token.strip().splitlines()[-1].startswith("pst_")

    r = run_cli("project", "create", "gspo-v1", url=database_url, check=False)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = run_cli("project", "create", "Bad Slug", url=database_url, check=False)
    assert r.returncode == 1 and "slug" in r.stderr
    r = run_cli("project", "create", "ok", "--name", "", url=database_url, check=False)
    assert r.returncode == 1 and "name" in r.stderr
    assert len(run_cli("project", "list", url=database_url).stdout.splitlines()) == 2

"""The web process as the Docker image runs it (gunicorn with config/gunicorn.py):
its access log never shows an API key, a pooled connection left idle for a
while is still good for the next request, and without Redis (counters in each
process's memory) one process serves, so a lockout holds for every request."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from leads.services.api_keys import api_key_create
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _database_url() -> str:
    """The test database, for the server process to read the key from."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def _gunicorn(log: Path, env: dict[str, str]) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "config/gunicorn.py",
                "--bind",
                f"127.0.0.1:{port}",
                "config.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield port, process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.fixture
def server(tmp_path):
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": "gunicorn-test",
        "LEADFLOW_DATA_DIR": str(settings.DATA_DIR),
        "WEB_CONCURRENCY": "1",
    }
    with _gunicorn(log, env) as (port, _):
        yield port, log


def _track(conn: http.client.HTTPConnection, key: str) -> tuple[int, bytes]:
    basic = base64.b64encode(f"{key}:".encode()).decode()
    body = json.dumps({"userId": "42", "event": "Signed up", "writeKey": key})
    conn.request(
        "POST",
        "/v1/track?source=test",
        body=body,
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    return response.status, response.read()


def _access_lines(log: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in log.read_text().splitlines() if '"POST /v1/track ' in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_access_log_has_no_key_and_an_idle_pooled_connection_is_kept(server):
    port, log = server
    _, key = api_key_create(name="website", scope="ingest")
    wrong = "lf_0badc0de_" + "x" * 40
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    first = _track(conn, key)
    # What a client pool does between two batches: keep the socket and reuse it.
    time.sleep(5)
    second = _track(conn, wrong)
    conn.close()

    assert first == (200, b'{"success": true}')
    assert second[0] == 401
    lines = _access_lines(log, 2)
    assert len(lines) == 2, log.read_text()
    assert [line.split('"')[1] for line in lines] == ["POST /v1/track HTTP/1.1"] * 2
    assert [line.split('" ')[1].split()[0] for line in lines] == ["200", "401"]
    text = log.read_text()
    for secret in (key, wrong, base64.b64encode(f"{key}:".encode()).decode(), "source=test"):
        assert secret not in text
    assert key.split("_")[1] not in text  # not even the key's prefix


def test_the_image_runs_gunicorn_with_the_config():
    cmd = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD"))
    assert json.loads(cmd.removeprefix("CMD ")) == [
        "gunicorn",
        "--config",
        "config/gunicorn.py",
        "config.wsgi:application",
    ]


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if int(ppid) == pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _sign_in(base: str, password: str) -> tuple[int, str]:
    """A sign-in as a new visitor would make it: its own connections and cookies."""
    with requests.Session() as browser:
        browser.get(f"{base}/login/", timeout=10)
        response = browser.post(
            f"{base}/login/",
            data={
                "username": "rep",
                "password": password,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/login/"},
            allow_redirects=False,
            timeout=10,
        )
        return response.status_code, response.text


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.django_db(transaction=True)
def test_without_redis_one_process_serves_and_a_lockout_holds_on_every_request(tmp_path):
    UserFactory.create(username="rep", role="sales")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "WEB_CONCURRENCY")
    }
    env |= {
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": "gunicorn-test",
        "LEADFLOW_DATA_DIR": str(tmp_path / "data"),
        "LOGIN_FAILURE_LIMIT": "3",
    }
    with _gunicorn(tmp_path / "gunicorn.log", env) as (port, process):
        base = f"http://127.0.0.1:{port}"
        workers = _children(process.pid)
        wrong = [_sign_in(base, f"guess-{n}")[0] for n in range(3)]
        right = [_sign_in(base, "pw-for-tests") for _ in range(8)]

    assert wrong == [200, 200, 200]
    assert [status for status, _ in right] == [200] * 8, "no sign-in went through"
    assert all("Too many attempts." in page for _, page in right)
    assert len(workers) == 1

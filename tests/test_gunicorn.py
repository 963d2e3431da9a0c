"""The web process as the Docker image runs it (gunicorn with config/gunicorn.py):
its access log never shows an API key, and a pooled connection left idle for a
while is still good for the next request."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from leads.services.api_keys import api_key_create

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


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": "gunicorn-test",
        "LEADFLOW_DATA_DIR": str(settings.DATA_DIR),
        "WEB_CONCURRENCY": "1",
    }
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
        yield port, log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


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

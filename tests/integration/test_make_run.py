"""The README's quickstart: `make run` migrates, loads the demo, starts web, worker
and beat on the embedded default, answers /healthz, and stops cleanly on Ctrl-C."""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, wait_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_starts_and_stops(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["LEADFLOW_DATA_DIR"] = str(tmp_path / "data")
    venv = Path(sys.executable).parent.parent
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"VENV={venv}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: b"Leadflow is running" in log_path.read_bytes(), 180, "the banner")
            output = log_path.read_text()
            assert f"Leadflow is running at http://127.0.0.1:{port}/" in output
            assert "password: leadflow" in output
            report = health(port)
            assert report is not None
            assert (report["database"], report["broker"]) == ("ok", "ok")
            # The worker's heartbeat, and the sweeper's (beat scheduled it and a
            # worker ran it), until then "degraded".
            wait_for(lambda: (health(port) or {}).get("status") == "ok", 60, "beat and the worker")
            assert (health(port) or {}).get("workers") == 1
            assert (tmp_path / "data" / "leadflow.sqlite3").exists()
            assert (tmp_path / "data" / "broker.sqlite3").exists()
        finally:
            # Ctrl-C in a terminal signals the whole foreground process group.
            os.killpg(make.pid, signal.SIGINT)
            make.wait(timeout=60)
    wait_for(lambda: not port_open(port), 30, "the web server to stop")
    marker = f"LEADFLOW_DATA_DIR={env['LEADFLOW_DATA_DIR']}".encode()
    wait_for(lambda: not processes_with(marker), 30, "web, worker and beat to exit")
    assert "exited; stopping the rest" not in log_path.read_text()


def processes_with(marker: bytes) -> list[int]:
    """Pids of live processes whose environment holds ``marker``."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found

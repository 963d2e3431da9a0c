"""`make run`'s stack leaves nothing behind: however its command ends (a closed
terminal, a supervisor's SIGTERM, a SIGKILL), web, worker and beat end with it,
and a plain stop needs no SIGKILL."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import ROOT, database_url, free_port, wait_for
from tests.integration.test_make_run import processes_with

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(sys.platform != "linux", reason="parent-death signals are Linux's"),
]


class Stack:
    def __init__(self, process: subprocess.Popen[bytes], port: int, marker: bytes, log: Path):
        self.process, self.port, self.marker, self.log = process, port, marker, log

    def health(self) -> dict:
        try:
            return dict(requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).json())
        except (OSError, ValueError):
            return {}

    def left(self) -> list[int]:
        """Processes of the stack still alive (the command itself included)."""
        return [pid for pid in processes_with(self.marker) if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def stack(request, tmp_path, private_redis) -> Iterator[Stack]:
    port = free_port()
    marker = f"LEADFLOW_DATA_DIR={tmp_path / 'data'}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": private_redis.url,
        "LEADFLOW_DATA_DIR": str(tmp_path / "data"),
    }
    log = tmp_path / "runstack.log"
    command = [sys.executable, "manage.py", "runstack", "--port", str(port), "--concurrency", "1"]
    if getattr(request, "param", "") == "under a shell":
        # As under make: a parent of its own that a supervisor may kill. (The
        # second command keeps the shell from replacing itself with runstack.)
        command = ["sh", "-c", f"{shlex.join(command)}; exit $?"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Stack(process, port, marker.encode(), log)
    try:
        wait_for(lambda: b"Leadflow is running" in log.read_bytes(), 90, "the banner")
        # The worker's heartbeat proves its main process is up and consuming.
        wait_for(lambda: running.health().get("worker") == "ok", 60, "the worker's heartbeat")
        assert len(running.left()) >= 6, "runstack, gunicorn and its workers, worker, pool, beat"
        yield running
    finally:
        for pid in running.left():
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_nothing_outlives_a_killed_runstack(stack):
    os.kill(stack.process.pid, signal.SIGKILL)
    stack.process.wait(timeout=10)
    wait_for(lambda: not stack.left(), 30, "web, worker and beat to follow runstack")


@pytest.mark.parametrize("stack", ["under a shell"], indirect=True)
def test_nothing_outlives_a_killed_parent(stack):
    os.kill(stack.process.pid, signal.SIGKILL)
    stack.process.wait(timeout=10)
    wait_for(lambda: not stack.left(), 30, "runstack, web, worker and beat to follow")


def test_a_closed_terminal_stops_the_stack_without_sigkill(stack):
    began = time.monotonic()
    os.kill(stack.process.pid, signal.SIGHUP)
    assert stack.process.wait(timeout=30) == 0
    assert time.monotonic() - began < 15, "stopped in order, not after the 20 s SIGKILL"
    wait_for(lambda: not stack.left(), 10, "every process of the stack to be gone")
    assert "exited; stopping the rest" not in stack.log.read_text()

"""The embedded default (SQLite, no Redis) keeps its database whole under a
worker whose pool children are forked again and again while events are processed:
the worker's main process never carries an open SQLite connection into a fork
(its heartbeat writes over a connection it closes, and no fork happens while
that connection is open)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, wait_for, worker_command

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc"),
]

EVENTS, LEADS = 2000, 60
PARTS = 4


class Embedded:
    def __init__(self, data: Path):
        self.data = data
        # What the commands said on stderr (a message not sent, a retry), for a failure.
        self.said: list[str] = []
        self.database = data / "leadflow.sqlite3"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "REDIS_URL", "WEB_CONCURRENCY")
        }
        self.env |= {
            "LEADFLOW_DATA_DIR": str(data),
            "PYTHONUNBUFFERED": "1",
            # Connections come and go within seconds, as they do over a longer run.
            "CONN_MAX_AGE": "2",
            # The test's own sweep sends events again that waited this long.
            "EVENT_SWEEP_AFTER_SECONDS": "10",
        }

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        if done.stderr.strip():
            self.said.append(done.stderr[-3000:])
        return done.stdout

    def query(self, sql: str) -> list[tuple]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as db:
            return db.execute(sql).fetchall()


@pytest.fixture
def embedded(tmp_path) -> Embedded:
    stack = Embedded(tmp_path / "data")
    stack.manage("migrate", "--verbosity", "0")
    return stack


@pytest.fixture
def worker(embedded, tmp_path) -> Iterator[subprocess.Popen[bytes]]:
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            # A new child forked from the main process every few tasks, as when a
            # child dies.
            worker_command("--max-tasks-per-child", "3"),
            cwd=ROOT,
            env=embedded.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _processed(embedded: Embedded) -> int:
    return int(
        embedded.query(
            "SELECT count(*) FROM leads_event WHERE type = 'track' AND processed_at IS NOT NULL"
        )[0][0]
    )


SWEEP = """
from leads.services.events import events_sweep
print(events_sweep())
"""

# Stores events as the web does, from a process of its own that then ends.
RECORD = """
from django.utils import timezone
from leads.services.events import events_record
from leads.services.ingest import segment_message_to_event
now = timezone.now()
first, count = {first}, {count}
for start in range(first, first + count, 50):
    messages = [
        {{"type": "track", "userId": f"user-{{n % {leads}}}", "event": "Viewed pricing",
         "messageId": f"m-{{n}}"}}
        for n in range(start, min(start + 50, first + count))
    ]
    events_record(events=[
        segment_message_to_event(m, type_=None, received_at=now, sent_at=None) for m in messages
    ])
"""


def test_pool_children_forked_again_and_again_leave_sqlite_whole(embedded, worker, tmp_path):
    # Given a worker whose main process has written its heartbeat.
    wait_for(
        lambda: bool(embedded.query("SELECT count(*) FROM leads_heartbeat")[0][0]),
        60,
        "the worker's heartbeat",
    )
    # When events are stored in a few parts and processed by pool children that
    # are replaced again and again.
    part = EVENTS // PARTS
    for first in range(0, EVENTS, part):
        embedded.manage("shell", "-c", RECORD.format(first=first, count=part, leads=LEADS))
    # Then every event is processed and the database is whole, while the main
    # process kept writing its heartbeat.
    # No beat runs here: when nothing moved for a while, the test sweeps as beat
    # would (a message can be held by a pool child that was replaced as it took
    # it; on a busy machine that was seen once in many runs, and the sweeper is
    # what sends such events again in a real stack).
    deadline = time.monotonic() + 240
    last, moved_at, sweeps = -1, time.monotonic(), 0
    while (processed := _processed(embedded)) < EVENTS and time.monotonic() < deadline:
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        if processed != last:
            last, moved_at = processed, time.monotonic()
        elif time.monotonic() - moved_at > 30:
            embedded.manage("shell", "-c", SWEEP)
            sweeps, moved_at = sweeps + 1, time.monotonic()
        time.sleep(1)
    # A heartbeat more, over the children forked last.
    time.sleep(11)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    said = "\n".join([f"sweeps: {sweeps}", *embedded.said, log[-3000:]])
    assert _processed(embedded) == EVENTS, said
    # At most one message went astray and was sent again.
    assert sweeps <= 2, said
    assert embedded.query("PRAGMA integrity_check") == [("ok",)]
    assert "disk I/O error" not in log
    assert "malformed" not in log
    assert "worker heartbeat not written" not in log
    assert embedded.query("SELECT count(*) FROM leads_lead")[0][0] == LEADS

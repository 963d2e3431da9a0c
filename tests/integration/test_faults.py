"""The fault suite: events arrive through the real ingest path of a web process
while the worker is killed with SIGKILL every few seconds, Redis is killed and
started again empty, PostgreSQL drops the worker's connections and beat is down
for a while. Afterwards every acknowledged event is processed, the scores are
exactly those computed here from what was sent, every lead that became hot has
one sales task, ``scoring_verify`` is clean, and no request was answered 500.

``FAULT_EVENTS`` sets the number of events (CI: 4,000, about a minute here;
``FAULT_EVENTS=20000`` is the full run, a few minutes on two cores)."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from django.core.management import call_command
from django.db import connection

from flows.models import Reentry
from leads.models import Event, Lead, Task
from scoring.models import ScoreChange
from scoring.services import scoring_settings_update
from tests.factories import LeadFactory, UserFactory
from tests.flows.helpers import graph, published
from tests.integration.conftest import database_url, wait_for, web_process
from tests.integration.test_worker_killed import CeleryProcesses, _group_members

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(sys.platform != "linux", reason="reads process groups from /proc"),
]

EVENTS = int(os.environ.get("FAULT_EVENTS", "4000"))
LEADS = max(EVENTS // 20, 50)
BATCH = 100
SEND_SECONDS = max(30.0, EVENTS / 400)
KILL_EVERY = 6.0
POINTS = {"Opened report": 3, "Invited teammate": 7}
NAMES = [*POINTS, "Viewed dashboard"]
WARM, HOT = 30, 60
WORKER_APP = "leadflow-fault-worker"


class Sender(threading.Thread):
    """Posts the plan in batches spread over ``SEND_SECONDS``, as an SDK would:
    a batch not answered 200 is sent again, and every status is kept."""

    def __init__(self, url: str, key: str, plan: list[tuple[str, str]]):
        super().__init__(daemon=True)
        self.url, self.plan = url, plan
        self.auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        self.statuses: Counter[int] = Counter()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self._send_all()
        except BaseException as exc:
            self.failure = exc

    def _send_all(self) -> None:
        session = requests.Session()
        starts = range(0, len(self.plan), BATCH)
        pause = SEND_SECONDS / len(starts)
        for start in starts:
            batch = [
                {"type": "track", "userId": user, "event": name, "messageId": f"m-{start + i}"}
                for i, (user, name) in enumerate(self.plan[start : start + BATCH])
            ]
            body = json.dumps({"batch": batch})
            for _ in range(20):
                try:
                    response = session.post(
                        f"{self.url}/v1/batch",
                        data=body,
                        headers={"Authorization": self.auth, "Content-Type": "application/json"},
                        timeout=30,
                    )
                except requests.ConnectionError:
                    self.statuses[0] += 1
                    time.sleep(0.5)
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    break
                time.sleep(0.5)
            time.sleep(pause)


def _terminate_worker_connections() -> int:
    """pg_terminate_backend on the workers' connections to the test database
    only (they name themselves by application_name)."""
    s = connection.settings_dict
    with (
        psycopg.connect(
            host=s["HOST"] or "127.0.0.1",
            port=s["PORT"] or 5432,
            user=s["USER"],
            password=s["PASSWORD"] or None,
            dbname=s["NAME"],
            autocommit=True,
        ) as db,
        db.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [WORKER_APP],
        )
        row = cursor.fetchone()
        return int(row[0]) if row else 0


def _task_retries(logs: Path) -> int:
    """Tasks that lost the database and were retried (Celery logs each retry)."""
    text = (logs / "worker.log").read_text(errors="replace")
    return text.count("retry: Retry in")


def _terminate_until_a_task_retries(logs: Path) -> int:
    """Terminate the workers' sessions until one of them was in a task's
    transaction (an idle one is replaced unnoticed by Django's health check),
    so that the task met the outage. Returns how many sessions were ended."""
    retries = _task_retries(logs)
    terminated = 0
    deadline = time.monotonic() + 20
    while _task_retries(logs) == retries:
        assert time.monotonic() < deadline, "no task met a terminated session"
        terminated += _terminate_worker_connections()
        time.sleep(0.5)
    return terminated


# When, as a share of SEND_SECONDS, each part of the stack fails or comes back.
FAULT_STEPS = [
    (0.30, "redis down"),
    (0.40, "redis up"),
    (0.50, "terminate"),
    (0.60, "beat down"),
    (0.65, "terminate"),
    (0.85, "beat up"),
]


def _send_through_faults(
    processes: CeleryProcesses, redis: Any, sender: Sender, logs: Path
) -> Counter[str]:
    """Start a worker and beat, then the sender; while it sends (and ten seconds
    after), take the steps of FAULT_STEPS and kill the worker every KILL_EVERY
    seconds. Returns how often each fault happened."""
    worker = processes.worker()
    beat = processes.beat()
    began = time.monotonic()
    sender.start()
    faults: Counter[str] = Counter()
    steps = list(FAULT_STEPS)
    next_kill = began + KILL_EVERY
    while sender.is_alive() or steps or time.monotonic() < began + SEND_SECONDS + 10:
        elapsed = (time.monotonic() - began) / SEND_SECONDS
        if steps and elapsed >= steps[0][0]:
            _, step = steps.pop(0)
            if step == "redis down":
                redis.kill()
            elif step == "redis up":
                redis.start()
            elif step == "terminate":
                faults["connections terminated"] += _terminate_until_a_task_retries(logs)
            elif step == "beat down":
                processes.kill(beat)
            elif step == "beat up":
                beat = processes.beat()
            faults[step] += 1
        if time.monotonic() >= next_kill:
            faults[_worker_replaced(processes, worker)] += 1
            worker = processes.worker()
            next_kill = time.monotonic() + KILL_EVERY
        time.sleep(0.2)
    return faults


def _worker_replaced(processes: CeleryProcesses, worker: subprocess.Popen[bytes]) -> str:
    """Kill the worker if it still runs; the fault that ended it."""
    if _group_members(worker.pid):
        processes.kill(worker)
        return "worker killed"
    # kombu's Redis transport can end the worker when the broker drops it
    # ("Unrecoverable error: AttributeError … hostname", a known race); compose's
    # restart policy starts it again, as the caller does.
    return "worker ended by itself"


@pytest.fixture
def faulty(tmp_path, private_redis) -> Iterator[tuple[CeleryProcesses, Any]]:
    processes = CeleryProcesses(tmp_path)
    processes.env.update(
        {
            "REDIS_URL": private_redis.url,
            "DATABASE_URL": f"{database_url()}?application_name={WORKER_APP}",
            "EVENT_SWEEP_AFTER_SECONDS": "3",
        }
    )
    yield processes, private_redis
    processes.stop_all()


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="terminates PostgreSQL backends; Redis broker"
)
def test_faults_lose_nothing_and_double_nothing(tmp_path, ingest_key, faulty):
    processes, redis = faulty
    # Given three flows: two score app events, the third gives a lead that
    # becomes hot to a sales rep, once.
    scoring_settings_update(warm_threshold=WARM, hot_threshold=HOT, mql_threshold=HOT)
    for name, points in POINTS.items():
        published(
            name,
            graph(
                ("t", "app.event", {"event": name}),
                (
                    "score",
                    "score.adjust",
                    {"points": points, "category": "engagement", "reason": name},
                ),
            ),
            reentry=Reentry.ALWAYS,
        )
    published(
        "Hot lead",
        graph(
            ("t", "grade.changed", {"grade": "hot"}),
            ("notify", "sales.notify", {"title": "Call {lead}", "email": False}),
        ),
        reentry=Reentry.ONCE,
    )
    UserFactory.create(username="rep", role="sales")
    users = [f"user-{n}" for n in range(LEADS)]
    for user in users:
        LeadFactory.create(external_id=user)
    rng = random.Random(20261206)
    weights = [(n % 10) ** 2 + 1 for n in range(LEADS)]
    plan = [(rng.choices(users, weights)[0], rng.choice(NAMES)) for _ in range(EVENTS)]
    expected = Counter({user: 0 for user in users})
    for user, name in plan:
        expected[user] += POINTS.get(name, 0)
    triggering = sum(1 for _, name in plan if name in POINTS)
    hot = {user for user, score in expected.items() if score >= HOT}
    assert 0 < len(hot) < LEADS

    web_env = {"DATABASE_URL": database_url(), "REDIS_URL": redis.url}
    with web_process(web_env, tmp_path / "web.log") as url:
        # When events arrive while every part of the stack fails in turn.
        sender = Sender(url, ingest_key, plan)
        faults = _send_through_faults(processes, redis, sender, tmp_path)
        sender.join()
        assert sender.failure is None, sender.failure

        # Then, with the last worker left alone, everything is processed.
        try:
            wait_for(
                lambda: not Event.objects.filter(processed_at__isnull=True).exists(),
                240,
                "every event to be processed",
            )
        except AssertionError as exc:
            waiting = Counter(
                Event.objects.filter(processed_at__isnull=True).values_list("type", flat=True)
            )
            raise AssertionError(
                f"{exc}\nwaiting: {dict(waiting)}\n{processes.log_tail()}"
            ) from None

    assert faults["worker killed"] >= 5
    assert faults["connections terminated"] >= 2
    # Those tasks were retried, not dropped; and no event counted it as its failure.
    assert _task_retries(tmp_path) >= 2
    assert (faults["redis down"], faults["redis up"], faults["beat up"]) == (1, 1, 1)
    # No request was answered 500 (nor anything but 200).
    assert set(sender.statuses) == {200}, sender.statuses

    assert Event.objects.filter(type="track").count() == EVENTS
    assert list(Event.objects.exclude(error="").values_list("id", "type", "error")[:5]) == []
    assert dict(Lead.objects.values_list("external_id", "score")) == dict(expected)
    changes = Counter(ScoreChange.objects.values_list("lead__external_id", "delta"))
    assert sum(changes.values()) == triggering
    assert changes == Counter((user, POINTS[name]) for user, name in plan if name in POINTS), (
        "one ledger row per triggering event"
    )
    assert Event.objects.filter(type="score.changed").count() == triggering
    tasks = Counter(Task.objects.values_list("lead__external_id", flat=True))
    assert tasks == Counter(hot), "one task per lead that became hot"
    out, err = StringIO(), StringIO()
    try:
        call_command("scoring_verify", stdout=out, stderr=err)
    except SystemExit as exc:
        pytest.fail(f"scoring_verify exited with {exc.code}:\n{err.getvalue()}")
    assert out.getvalue() == "Scores match the ledger.\n"

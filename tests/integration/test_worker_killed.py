"""Exactly-once scoring when a worker dies: 5,000 tracked events go through the
real ingest path, two workers share the backlog, one of them (main process and
pool children) is killed with SIGKILL part-way through, a new worker starts, and
beat's sweeper re-enqueues what the dead worker had taken; a second test kills
each of the two workers in turn, a new one starting after each kill. In the end
every event is processed once in effect: every score is exact, one ledger row per
triggering event, the ledger agrees with the scores, and each lead's score
changes form one unbroken chain (its events were applied one at a time,
whichever worker took them)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command

from config.celery import app as celery_app
from flows.models import Enrollment, Reentry, StepRun
from leads.models import Event, Lead
from scoring.models import LeadScore, ScoreChange
from scoring.rules import grades_for
from scoring.services import scoring_settings, scoring_settings_update
from tests.factories import LeadFactory
from tests.flows.helpers import graph, published
from tests.integration.conftest import (
    ROOT,
    celery_command,
    database_url,
    wait_for,
    worker_command,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(sys.platform != "linux", reason="reads process groups from /proc"),
]

EVENTS = 5000
LEADS = 100
BATCH = 100  # what Segment's SDKs send per request
# Event name -> points its flow adds; the last name starts no flow.
POINTS = {"Opened report": 3, "Invited teammate": 7}
NAMES = [*POINTS, "Viewed dashboard"]
# Track events processed before the worker is killed. Not a multiple of BATCH: a
# message's tracked events are processed before the events they derive, so a
# round number would catch both messages in flight between the two.
KILL_AFTER = 1050
# The second kill of the two-kill variant, well before the end of the backlog;
# not a multiple of BATCH either.
SECOND_KILL_AFTER = 2750
# Shorter than the default, so that the sweeper soon re-enqueues what the killed
# worker had taken (and, along the way, much of the backlog a second time).
SWEEP_AFTER_SECONDS = 10
WARM, HOT = 20, 50


def _group_members(pgid: int) -> list[int]:
    """Live processes (zombies do not count) of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended meanwhile
        # The command name may hold spaces and parentheses; what follows the last
        # ")" is "state ppid pgrp …".
        state, _ppid, pgrp = text.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


class CeleryProcesses:
    """Workers and a beat, each leading its own process group so that a SIGKILL
    reaches the pool children too."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "PYTHONUNBUFFERED": "1",
            "EVENT_SWEEP_AFTER_SECONDS": str(SWEEP_AFTER_SECONDS),
        }

    def _start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        return process

    def worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        return self._start(name, worker_command("--without-heartbeat", "--hostname", f"{name}@%h"))

    def beat(self) -> subprocess.Popen[bytes]:
        schedule = self.logs / "beat-schedule"
        return self._start(
            "beat", celery_command("beat", "--loglevel", "INFO", "--schedule", str(schedule))
        )

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and its children: no warm or cold shutdown, so the
        messages it had taken are neither acknowledged nor given back."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        wait_for(lambda: not _group_members(process.pid), 10, "the killed group to be gone")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            if _group_members(process.pid):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        tails = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(tails)


def _unacked_messages(*, forget: bool = False) -> int | None:
    """How many delivered messages the broker holds unacknowledged (Redis only).

    A killed worker's messages stay there until the visibility timeout (an hour)
    restores them; ``forget`` drops them, so that they cannot reach a later test
    run's database."""
    with celery_app.connection_for_write() as connection:
        if connection.transport.driver_type != "redis":
            return None
        channel: Any = connection.default_channel
        count = int(channel.client.hlen(channel.unacked_key))
        if forget:
            channel.client.delete(channel.unacked_key, channel.unacked_index_key)
        return count


@pytest.fixture
def celery_processes(transactional_db, tmp_path) -> Iterator[CeleryProcesses]:
    celery_app.control.purge()
    _unacked_messages(forget=True)
    processes = CeleryProcesses(tmp_path)
    yield processes
    processes.stop_all()
    _unacked_messages(forget=True)
    celery_app.control.purge()


def _wait(check: Callable[[], bool], timeout: float, what: str, procs: CeleryProcesses) -> None:
    """``wait_for``, failing with what is still unprocessed and the logs' ends."""
    try:
        wait_for(check, timeout, what)
    except AssertionError as exc:
        waiting = Counter(
            Event.objects.filter(processed_at__isnull=True).values_list("type", flat=True)
        )
        raise AssertionError(f"{exc}\nunprocessed: {dict(waiting)}\n{procs.log_tail()}") from None


def _track_processed() -> int:
    return Event.objects.filter(type="track", processed_at__isnull=False).count()


@dataclass
class Backlog:
    users: list[str]
    # (user, event name) of each tracked event, in the order they were sent.
    plan: list[tuple[str, str]]
    expected_score: Counter[str]
    # How many of the events start a scoring flow.
    triggering: int


def _backlog_recorded(live_server_url: str, ingest_key: str) -> Backlog:
    """Two flows scoring app events, leads with very different amounts of
    activity, and 5,000 events recorded through /v1/batch."""
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
    users = [f"user-{n}" for n in range(LEADS)]
    for user in users:
        LeadFactory.create(external_id=user)
    rng = random.Random(20261122)
    # From a few leads with no event at all to some with well over a hundred.
    weights = [(n % 20) ** 2 + 1 for n in range(LEADS)]
    plan = [(rng.choices(users, weights)[0], rng.choice(NAMES)) for _ in range(EVENTS)]
    expected_score = Counter({user: 0 for user in users})
    for user, name in plan:
        expected_score[user] += POINTS.get(name, 0)
    triggering = sum(1 for _, name in plan if name in POINTS)
    ends = {"cold" if s < WARM else "warm" if s < HOT else "hot" for s in expected_score.values()}
    assert ends == {"cold", "warm", "hot"}, "leads end in every grade"

    auth = "Basic " + base64.b64encode(f"{ingest_key}:".encode()).decode()
    for start in range(0, EVENTS, BATCH):
        batch = [
            {"type": "track", "userId": user, "event": name, "messageId": f"m-{start + i}"}
            for i, (user, name) in enumerate(plan[start : start + BATCH])
        ]
        response = requests.post(
            f"{live_server_url}/v1/batch",
            data=json.dumps({"batch": batch}),
            headers={"Authorization": auth, "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == BATCH
    assert Event.objects.filter(type="track").count() == EVENTS
    return Backlog(users=users, plan=plan, expected_score=expected_score, triggering=triggering)


def _killed_after(procs: CeleryProcesses, worker: Any, processed: int, timeout: float) -> int:
    """Kill ``worker`` (its whole process group) once ``processed`` app events
    are processed; how many were processed when it died."""
    _wait(lambda: _track_processed() >= processed, timeout, f"{processed} events processed", procs)
    assert len(_group_members(worker.pid)) >= 3, "the main process and two pool children"
    procs.kill(worker)
    return _track_processed()


def _drained(procs: CeleryProcesses) -> None:
    _wait(
        lambda: not Event.objects.filter(processed_at__isnull=True).exists(),
        240,
        "every event, derived ones too, to be processed",
        procs,
    )


def _assert_exactly_once(backlog: Backlog) -> None:
    """Every event processed once in effect, whichever workers died meanwhile."""
    users, plan = backlog.users, backlog.plan
    expected_score, triggering = backlog.expected_score, backlog.triggering
    # Every event was processed without an error.
    assert Event.objects.filter(type="track", processed_at__isnull=False).count() == EVENTS
    assert list(Event.objects.exclude(error="").values_list("id", "type", "error")[:5]) == []

    # Every lead has exactly the points of its events, in total and in its category.
    scores = dict(Lead.objects.values_list("external_id", "score"))
    assert scores == dict(expected_score)
    engagement = dict(
        LeadScore.objects.filter(category__key="engagement").values_list(
            "lead__external_id", "score"
        )
    )
    assert engagement == {user: score for user, score in expected_score.items() if score}
    assert not LeadScore.objects.exclude(category__key="engagement").exists()

    # One enrollment and one ledger row per triggering event, none for the rest.
    events = {
        pk: (user, name)
        for pk, user, name in Event.objects.filter(type="track").values_list(
            "pk", "user_id", "name"
        )
    }
    expected_triggers = {pk for pk, (_, name) in events.items() if name in POINTS}
    assert len(expected_triggers) == triggering
    trigger_of_step = dict(
        StepRun.objects.filter(node_id="score").values_list("pk", "enrollment__trigger_event_id")
    )
    changes = list(ScoreChange.objects.values_list("source_key", "lead__external_id", "delta"))
    per_event: Counter[int] = Counter()
    wrong = []
    for source_key, lead_user, delta in changes:
        event_id = trigger_of_step[int(source_key.removeprefix("step:"))]
        per_event[event_id] += 1
        event_user, name = events[event_id]
        if (lead_user, delta) != (event_user, POINTS[name]):
            wrong.append((source_key, lead_user, delta, event_user, name))
    assert wrong == []
    assert len(changes) == triggering
    assert set(per_event) == expected_triggers
    assert [pk for pk, n in per_event.items() if n != 1] == []

    enrollments = Counter(
        Enrollment.objects.values_list("flow__name", "trigger_event__name", "status")
    )
    assert enrollments == {
        (name, name, "completed"): sum(1 for _, n in plan if n == name) for name in POINTS
    }
    steps = Counter(StepRun.objects.values_list("node_id", "status", "visit"))
    assert steps == {("t", "completed", 0): triggering, ("score", "completed", 0): triggering}

    # The effects that derive from score changes happened once each as well.
    assert Event.objects.filter(type="score.changed").count() == triggering
    # Each lead's changes, in the order they were made, go from 0 to its score with
    # no gap and no overlap: no two of its events were applied at once.
    chains: dict[str, list[tuple[int, int]]] = {}
    for changed, properties in (
        Event.objects.filter(type="score.changed")
        .order_by("pk")
        .values_list("lead__external_id", "properties")
    ):
        chains.setdefault(str(changed), []).append((properties["from"], properties["to"]))
    broken = {
        user: chain
        for user, chain in chains.items()
        if [step[0] for step in chain] != [0, *(step[1] for step in chain[:-1])]
        or chain[-1][1] != expected_score[user]
    }
    assert broken == {}
    # Each step is far smaller than the gap between thresholds: no grade is skipped.
    crossed = [
        (user, grade)
        for user in users
        for grade, threshold in (("warm", WARM), ("hot", HOT))
        if expected_score[user] >= threshold
    ]
    # (grade.changed also tells of the fit and engagement grades moving: those
    # keep the grade.)
    grade_changes = [
        (user, name)
        for user, name, properties in Event.objects.filter(type="grade.changed").values_list(
            "lead__external_id", "name", "properties"
        )
        if properties["from"] != properties["to"]
    ]
    assert Counter(grade_changes) == Counter(crossed)
    settings = scoring_settings()
    grades = dict(Lead.objects.values_list("external_id", "grade"))
    assert grades == {
        user: grades_for(total=score, fit=0, engagement=0, stage="lead", settings=settings).grade
        for user, score in expected_score.items()
    }
    stages = Counter(Lead.objects.values_list("stage", flat=True))
    mqls = sum(1 for score in expected_score.values() if score >= HOT)
    assert stages == Counter({"mql": mqls, "subscriber": LEADS - mqls})
    assert Event.objects.filter(type="field.changed", name="stage").count() == mqls

    # And the ledger check agrees.
    out, err = StringIO(), StringIO()
    try:
        call_command("scoring_verify", stdout=out, stderr=err)
    except SystemExit as exc:
        pytest.fail(f"scoring_verify exited with {exc.code}:\n{err.getvalue()}")
    assert out.getvalue() == "Scores match the ledger.\n"


def test_worker_killed_mid_backlog_scores_every_event_exactly_once(
    live_server, ingest_key, celery_processes
):
    # Given two flows scoring app events, leads with very different amounts of
    # activity, and 5,000 events recorded through /v1/batch.
    backlog = _backlog_recorded(live_server.url, ingest_key)

    # When two workers share the backlog, one is killed with part of it done, and
    # a new one starts.
    worker = celery_processes.worker("first")
    other = celery_processes.worker("second")
    celery_processes.beat()
    processed_at_kill = _killed_after(celery_processes, worker, KILL_AFTER, 120)
    assert KILL_AFTER <= processed_at_kill < EVENTS, "the kill must come mid-backlog"
    unacked = _unacked_messages()
    assert unacked is None or unacked >= 1, "the killed worker held messages"
    assert other.poll() is None, "the other worker goes on"

    celery_processes.worker("third")
    _drained(celery_processes)

    # Then every event was processed once in effect.
    _assert_exactly_once(backlog)


def test_two_workers_each_killed_mid_backlog_score_every_event_exactly_once(
    live_server, ingest_key, celery_processes
):
    # Given the same account and backlog,
    backlog = _backlog_recorded(live_server.url, ingest_key)

    # when two workers share it, the first is killed with part of it done and a
    # third starts, then the second is killed further on and a fourth starts,
    first = celery_processes.worker("first")
    second = celery_processes.worker("second")
    celery_processes.beat()
    processed = _killed_after(celery_processes, first, KILL_AFTER, 120)
    assert processed < EVENTS, "the first kill must come mid-backlog"
    assert second.poll() is None, "the second worker goes on"
    celery_processes.worker("third")
    processed = _killed_after(celery_processes, second, SECOND_KILL_AFTER, 240)
    assert processed < EVENTS, "the second kill must come mid-backlog"
    unacked = _unacked_messages()
    assert unacked is None or unacked >= 1, "the killed workers held messages"
    celery_processes.worker("fourth")
    _drained(celery_processes)

    # then every event was processed once in effect, as with one kill.
    _assert_exactly_once(backlog)

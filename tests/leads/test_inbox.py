"""The embedded mode's inbox (leads/services/inbox.py): the tracking API appends
to a SQLite file of its own, the worker moves the events into the database and
processes them, each exactly once, and nothing waiting is lost."""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest
from django.db import connection

from leads.models import Event, Lead
from leads.services import inbox
from leads.services.events import events_backlog
from leads.services.inbox import events_inbox_drain, events_receive, inbox_path, inbox_waiting
from leads.services.ingest import segment_message_to_event
from leads.tasks import events_sweep

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="the inbox is the embedded mode's (SQLite)"
    ),
]


@pytest.fixture
def inbox_on(settings):
    settings.EVENT_INBOX = True
    path = inbox_path()
    assert path is not None
    with sqlite3.connect(path) as db:
        db.executescript(inbox._SCHEMA)
        db.execute("DELETE FROM inbox")
        db.execute("UPDATE bell SET rung = 0")
    return path


def _track(n: int, user: str = "u-1") -> dict:
    return {"type": "track", "userId": user, "event": "Viewed pricing", "messageId": f"m-{n}"}


def _events(messages: list[dict]) -> list[Event]:
    from django.utils import timezone

    now = timezone.now()
    return [
        segment_message_to_event(m, type_=None, received_at=now, sent_at=None) for m in messages
    ]


def _rows(path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM inbox").fetchone()[0])


def test_a_batch_goes_through_the_inbox_and_is_processed_once(client, ingest_key, inbox_on):
    # Given the inbox on (the worker runs inline in unit tests).
    # When a batch with a repeated message is posted.
    body = {"batch": [_track(1), _track(2), _track(1)]}
    response = client.post(
        "/v1/batch",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{ingest_key}:".encode()).decode(),
    )
    # Then it is accepted, moved into the database and processed: two events.
    assert response.status_code == 200
    assert response.json()["accepted"] == 3
    events = list(Event.objects.filter(type="track").order_by("idempotency_key"))
    assert [(e.idempotency_key, e.processed_at is not None) for e in events] == [
        ("m-1", True),
        ("m-2", True),
    ]
    assert Lead.objects.get().external_id == "u-1"
    assert _rows(inbox_on) == 0


def test_a_move_repeated_after_a_crash_adds_nothing(inbox_on):
    # Given events moved into the database whose inbox rows were not deleted (the
    # worker died between the two commits).
    rows = [inbox._row(e) for e in _events([_track(1), _track(2)])]
    conn = inbox._connection(inbox_on)
    conn.executemany("INSERT INTO inbox (event) VALUES (?)", rows)
    assert inbox._move(conn)[0] == 2
    conn.executemany("INSERT INTO inbox (event) VALUES (?)", rows)
    # When the inbox is drained.
    assert events_inbox_drain() == 2
    # Then each event is there once, processed once.
    events = Event.objects.filter(type="track").order_by("idempotency_key")
    assert [(e.idempotency_key, e.processed_at is not None) for e in events] == [
        ("m-1", True),
        ("m-2", True),
    ]
    assert _rows(inbox_on) == 0


def test_the_sweeper_rings_for_events_whose_ring_was_lost(inbox_on):
    # Given events in the inbox and no message for them.
    conn = inbox._connection(inbox_on)
    conn.executemany(
        "INSERT INTO inbox (event) VALUES (?)",
        [inbox._row(e) for e in _events([_track(1), _track(2, "u-2")])],
    )
    assert inbox_waiting() == 2
    assert events_backlog() == {"waiting": 2, "failed": 0}
    # When beat's sweep runs.
    events_sweep()
    # Then they are moved and processed.
    assert inbox_waiting() == 0
    assert Event.objects.filter(type="track", processed_at__isnull=False).count() == 2
    assert Lead.objects.count() == 2


def _rung(path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT rung FROM bell").fetchone()[0])


def test_a_ring_while_another_process_moves_is_left_to_that_one(inbox_on):
    # Given another mover holding the lock.
    with inbox._mover(inbox_on) as mine:
        assert mine
        # When two requests store events: the first rings (its drain, inline
        # here, finds the lock held and moves nothing), the second does not ring.
        events_receive(events=_events([_track(1)]))
        assert (inbox_waiting(), _rung(inbox_on)) == (1, 1)
        events_receive(events=_events([_track(2)]))
        assert (inbox_waiting(), _rung(inbox_on)) == (2, 1)
    # Then the holder's drain moves both and lets the next request ring.
    assert events_inbox_drain() == 2
    assert (inbox_waiting(), _rung(inbox_on)) == (0, 0)
    assert Event.objects.filter(type="track", processed_at__isnull=False).count() == 2


def test_without_the_inbox_events_are_recorded_directly(settings):
    settings.EVENT_INBOX = False
    assert inbox_path() is None
    events_receive(events=_events([_track(1)]))
    assert Event.objects.filter(type="track").count() == 1

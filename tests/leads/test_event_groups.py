"""Consecutive events of known leads go through in one transaction: the same
effects, in the same order per lead, and a failing event still fails alone."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.models import Event
from leads.services import apply, events
from leads.services.events import GROUP_LIMIT, events_process
from scoring.models import ScoreChange
from tests.factories import EventFactory, LeadFactory
from tests.flows.helpers import graph, published

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="groups are PostgreSQL's (SKIP LOCKED)"
    ),
]


def _scoring_flow() -> None:
    published(
        "Report scoring",
        graph(
            ("t", "app.event", {"event": "Opened report"}),
            ("s", "score.adjust", {"points": 3, "category": "engagement", "reason": "Report"}),
        ),
        reentry="always",
    )


def _tracked(user: str, at: dt.datetime, name: str = "Opened report") -> Event:
    return EventFactory.create(lead=None, user_id=user, name=name, occurred_at=at)


def _transactions(captured: CaptureQueriesContext) -> int:
    # Every transaction of the worker ends by marking its events processed.
    return sum(1 for q in captured.captured_queries if q["sql"] == events._EVENTS_PROCESSED)


def test_events_of_known_leads_go_through_in_one_transaction_in_order():
    # Given a scoring flow, three known leads and seven events about them,
    _scoring_flow()
    for user in ("u-1", "u-2", "u-3"):
        LeadFactory.create(external_id=user)
    start = timezone.now() - dt.timedelta(minutes=10)
    plan = ["u-1", "u-2", "u-1", "u-3", "u-1", "u-2", "u-3"]
    events = [_tracked(user, start + dt.timedelta(seconds=n)) for n, user in enumerate(plan)]

    # when one message names them all,
    with CaptureQueriesContext(connection) as captured:
        events_process(event_ids=[e.pk for e in reversed(events)])

    # then one transaction processed them with their derived events,
    assert _transactions(captured) == 1
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    # each scored once, and each lead's score changes form one chain, in the
    # order its events happened.
    changes = list(
        ScoreChange.objects.order_by("id").values_list("lead__external_id", "delta", "occurred_at")
    )
    assert [(user, delta) for user, delta, _ in changes] == [(user, 3) for user in plan]
    assert [at for _, _, at in changes] == [e.occurred_at for e in events]
    chains: dict[str, list[tuple[int, int]]] = {}
    for lead, properties in (
        Event.objects.filter(type="score.changed")
        .order_by("id")
        .values_list("lead__external_id", "properties")
    ):
        chains.setdefault(str(lead), []).append((properties["from"], properties["to"]))
    assert chains == {
        "u-1": [(0, 3), (3, 6), (6, 9)],
        "u-2": [(0, 3), (3, 6)],
        "u-3": [(0, 3), (3, 6)],
    }


def test_a_group_takes_events_by_email_and_ends_at_one_that_needs_resolution():
    # Given a known lead's events by user id and by email (as an ESP sends
    # them), then a new user's, an anonymous visitor's, and more of the lead's
    # than a group holds,
    lead = LeadFactory.create(external_id="u-1", email="one@example.com")
    start = timezone.now() - dt.timedelta(minutes=10)
    at = [start + dt.timedelta(seconds=n) for n in range(GROUP_LIMIT + 6)]
    by_email = EventFactory.create(
        lead=None, type="email.opened", name="", email="one@example.com", occurred_at=at[2]
    )
    events = [_tracked("u-1", at[0]), _tracked("u-1", at[1]), by_email]
    events.append(_tracked("new-user", at[3]))
    events.append(EventFactory.create(lead=None, anonymous_id="anon-1", occurred_at=at[4]))
    events += [_tracked("u-1", at[5 + n]) for n in range(GROUP_LIMIT + 1)]

    with CaptureQueriesContext(connection) as captured:
        events_process(event_ids=[e.pk for e in events])

    # then the lead's first three went together, the new user and the visitor
    # alone, and the rest in a full group and one more.
    assert _transactions(captured) == 1 + 1 + 1 + 2
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    by_email.refresh_from_db()
    assert by_email.lead_id == lead.pk
    assert Event.objects.filter(type="lead.created").count() == 2


def test_a_failing_event_of_a_group_fails_alone(monkeypatch):
    # Given three events of known leads, the second of which cannot be applied,
    for user in ("u-1", "u-2"):
        LeadFactory.create(external_id=user)
    start = timezone.now() - dt.timedelta(minutes=10)
    first = _tracked("u-1", start)
    failing = _tracked("u-2", start + dt.timedelta(seconds=1), name="Broken")
    last = _tracked("u-1", start + dt.timedelta(seconds=2))
    event_apply = apply.event_apply

    def explode(*, event, lead, touched=False):
        if event.name == "Broken":
            raise RuntimeError("boom")
        event_apply(event=event, lead=lead, touched=touched)

    monkeypatch.setattr(apply, "event_apply", explode)

    # when they are processed,
    events_process(event_ids=[first.pk, failing.pk, last.pk])

    # then the group rolled back and each went alone: the failing one is
    # recorded as failed and backs off, the others are processed.
    failing.refresh_from_db()
    assert (failing.processed_at, failing.attempts, failing.error) == (
        None,
        1,
        "RuntimeError: boom",
    )
    assert failing.retry_at is not None
    assert set(Event.objects.filter(processed_at__isnull=True).values_list("id", flat=True)) == {
        failing.pk
    }
    assert Event.objects.filter(pk__in=[first.pk, last.pk], error="").count() == 2

"""How an event's transaction commits (core.commit): without waiting for the disk
when nothing it did leaves the system, with the server's setting when it queues
something that does (here an outbound webhook)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from core import prepared
from core.commit import callbacks_mark, commit_leaves_system, on_commit_internal
from leads.models import Event
from leads.services import events as event_services
from leads.services.events import events_process
from tests.factories import EventFactory, HookSubscriptionFactory, LeadFactory
from tests.flows.helpers import graph, published

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's"
)


@pytest.fixture
def commit_modes(monkeypatch) -> dict[int, str]:
    """The transaction's synchronous_commit right after its events are marked
    processed (what its COMMIT will use), by the first event of the transaction."""
    seen: dict[int, str] = {}
    fetch = prepared.fetch

    def observed(sql, params):
        rows = fetch(sql, params)
        if sql == event_services._EVENTS_PROCESSED:
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                seen[params[-1][0]] = cursor.fetchone()[0]
        return rows

    monkeypatch.setattr(prepared, "fetch", observed)
    return seen


@pytest.mark.django_db(transaction=True)
def test_an_event_with_internal_effects_only_commits_without_waiting_for_the_disk(
    commit_modes,
):
    # Given a scoring flow (its score change derives events of the same lead,
    # whose doorbell is internal),
    published(
        "Trial",
        graph(
            ("t", "app.event", {"event": "Signed up"}),
            ("s", "score.adjust", {"points": 5, "category": "engagement", "reason": "Trial"}),
        ),
    )
    event = EventFactory.create(lead=LeadFactory.create(), name="Signed up")

    # when a worker processes the event in a transaction of its own,
    events_process(event_ids=[event.pk])

    # then that transaction commits asynchronously, and did everything.
    assert commit_modes == {event.pk: "off"}
    assert Event.objects.filter(processed_at__isnull=True).count() == 0
    assert Event.objects.filter(type="score.changed").count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_event_that_queues_an_outbound_delivery_commits_durably(commit_modes):
    # Given a webhook subscribed to score changes (its target refuses at once),
    HookSubscriptionFactory.create(target_url="http://127.0.0.1:9/in", events=["score.changed"])
    published(
        "Trial",
        graph(
            ("t", "app.event", {"event": "Signed up"}),
            ("s", "score.adjust", {"points": 5, "category": "engagement", "reason": "Trial"}),
        ),
    )
    lead = LeadFactory.create()
    scoring = EventFactory.create(lead=lead, name="Signed up")
    quiet = EventFactory.create(lead=lead, name="Viewed dashboard")

    # when each event is processed by a message of its own,
    events_process(event_ids=[scoring.pk])
    events_process(event_ids=[quiet.pk])

    # then the one whose score change is delivered out commits with the server's
    # setting, the other asynchronously.
    assert commit_modes == {scoring.pk: "on", quiet.pk: "off"}


@pytest.mark.django_db(transaction=True)
def test_a_group_that_queues_an_outbound_delivery_commits_durably(commit_modes):
    # Given the same webhook and flow, and two events of two known leads,
    HookSubscriptionFactory.create(target_url="http://127.0.0.1:9/in", events=["score.changed"])
    published(
        "Trial",
        graph(
            ("t", "app.event", {"event": "Signed up"}),
            ("s", "score.adjust", {"points": 5, "category": "engagement", "reason": "Trial"}),
        ),
    )
    quiet = EventFactory.create(lead=LeadFactory.create(), name="Viewed dashboard")
    scoring = EventFactory.create(lead=LeadFactory.create(), name="Signed up")

    # when one message names both (one transaction),
    events_process(event_ids=[quiet.pk, scoring.pk])

    # then that transaction is durable, for the delivery of one of them.
    assert commit_modes == {quiet.pk: "on"}


@pytest.mark.django_db
def test_inside_a_callers_transaction_the_callers_commit_decides(commit_modes):
    event = EventFactory.create(lead=LeadFactory.create())

    events_process(event_ids=[event.pk])

    assert commit_modes == {event.pk: "on"}


@pytest.mark.django_db
def test_only_callbacks_marked_internal_leave_the_commit_asynchronous():
    with transaction.atomic():
        since = callbacks_mark()
        on_commit_internal(lambda: None)
        assert commit_leaves_system(since=since) is False
        transaction.on_commit(lambda: None)
        assert commit_leaves_system(since=since) is True
    with transaction.atomic():
        since = callbacks_mark()
        try:
            with transaction.atomic():
                transaction.on_commit(lambda: None)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        # A callback of a rolled-back savepoint never runs.
        assert commit_leaves_system(since=since) is False

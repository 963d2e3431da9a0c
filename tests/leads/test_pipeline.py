import datetime as dt

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from leads.models import Event, Heartbeat, Lead
from leads.services.events import DERIVED_DEPTH_LIMIT, events_process, events_sweep
from leads.services.leads import lead_merge
from leads.tasks import events_process_task
from tests.factories import EventFactory, FieldDefinitionFactory, LeadFactory

pytestmark = pytest.mark.django_db


def unprocessed(**kwargs):
    defaults = {"lead": None, "type": "track", "name": "E", "user_id": "u-1"}
    return EventFactory.create(**{**defaults, **kwargs})


def test_processing_twice_applies_once():
    event = unprocessed()
    events_process(event_ids=[event.pk])
    events_process(event_ids=[event.pk])
    event.refresh_from_db()
    assert event.processed_at is not None
    assert Lead.objects.count() == 1
    assert Event.objects.filter(type="lead.created").count() == 1
    # Derived events are processed by the same loop, with no message of their own.
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_events_of_a_batch_apply_in_occurred_order():
    now = timezone.now()
    later = unprocessed(type="identify", name="", properties={"title": "CEO"}, occurred_at=now)
    earlier = unprocessed(
        type="identify",
        name="",
        properties={"title": "Intern"},
        occurred_at=now - dt.timedelta(hours=1),
    )
    events_process(event_ids=[later.pk, earlier.pk])
    assert Lead.objects.get().job_title == "CEO"


def test_identify_custom_fields_are_cleaned_and_bad_values_kept_raw():
    FieldDefinitionFactory.create(key="seats", type="number")
    FieldDefinitionFactory.create(key="trial_ends", type="date")
    event = unprocessed(
        type="identify",
        name="",
        properties={"seats": "12", "trial_ends": "2026-05-01T00:00:00Z", "extra": [1, 2]},
    )
    events_process(event_ids=[event.pk])
    lead = Lead.objects.get()
    assert lead.custom_fields == {"seats": 12, "trial_ends": "2026-05-01"}
    assert lead.raw_traits == {"extra": [1, 2]}
    bad = unprocessed(type="identify", name="", properties={"seats": "lots"})
    events_process(event_ids=[bad.pk])
    lead.refresh_from_db()
    assert lead.custom_fields["seats"] == 12
    assert lead.raw_traits["seats"] == "lots"


def test_sweeper_reenqueues_stale_events_and_beats():
    stale = unprocessed(received_at=timezone.now() - dt.timedelta(minutes=5))
    fresh = unprocessed(user_id="u-2")
    assert events_sweep() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.processed_at is not None
    # Only the stale one was sent again; the worker then drained the outbox.
    assert fresh.processed_at is not None
    assert Heartbeat.objects.get(name="scheduler").seen_at > timezone.now() - dt.timedelta(
        seconds=5
    )


def test_a_message_drains_the_outbox_but_not_events_backing_off():
    named = unprocessed(user_id="u-1")
    waiting = [unprocessed(user_id=f"u-{n}") for n in range(2, 5)]
    backing_off = unprocessed(
        user_id="u-9", attempts=1, retry_at=timezone.now() + dt.timedelta(minutes=1)
    )
    given_up = unprocessed(user_id="u-10", attempts=5)
    events_process_task(event_ids=[named.pk])
    assert (
        list(
            Event.objects.filter(
                pk__in=[named.pk, *(w.pk for w in waiting)], processed_at__isnull=True
            )
        )
        == []
    )
    assert (
        Event.objects.filter(
            pk__in=[backing_off.pk, given_up.pk], processed_at__isnull=True
        ).count()
        == 2
    )
    # Without draining (a replay, a test) only the named events are processed.
    more = unprocessed(user_id="u-11")
    other = unprocessed(user_id="u-12")
    events_process(event_ids=[more.pk])
    other.refresh_from_db()
    assert other.processed_at is None


def test_failing_event_backs_off_and_gives_up_after_max_attempts(monkeypatch, client):
    event = unprocessed(received_at=timezone.now() - dt.timedelta(hours=5))

    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("leads.services.apply.event_apply", explode)
    waits = []
    for attempt in range(1, 6):
        assert events_sweep() == 1
        event.refresh_from_db()
        assert (event.attempts, event.error) == (attempt, "RuntimeError: boom")
        assert event.retry_at is not None
        waits.append(round((event.retry_at - timezone.now()).total_seconds() / 30))
        assert events_sweep() == 0  # backing off
        Event.objects.filter(pk=event.pk).update(retry_at=timezone.now())
    assert waits == [1, 4, 16, 64, 256]
    assert events_sweep() == 0
    event.refresh_from_db()
    assert event.processed_at is None
    health = client.get("/healthz").json()
    assert (health["events_failed"], health["events_waiting"]) == (1, 0)


def test_derived_chain_past_the_limit_is_stopped():
    lead = LeadFactory.create()
    event = EventFactory.create(lead=lead, type="field.changed", depth=DERIVED_DEPTH_LIMIT + 1)
    events_process(event_ids=[event.pk])
    event.refresh_from_db()
    assert event.processed_at is not None
    assert event.error.startswith("Stopped: derived-event chain deeper than")


def test_merge_moves_everything_and_twice_is_noop():
    target = LeadFactory.create(email="t@example.com", job_title="", custom_fields={"a": 1})
    source = LeadFactory.create(
        email=None, external_id=None, job_title="CTO", custom_fields={"a": 2, "b": 3}
    )
    EventFactory.create(lead=source, name="from source")
    source_id = source.pk
    lead_merge(source=source, target=target)
    lead_merge(source=source, target=target)
    target.refresh_from_db()
    assert target.job_title == "CTO"
    assert target.custom_fields == {"a": 1, "b": 3}
    assert not Lead.objects.filter(pk=source_id).exists()
    assert Event.objects.get(name="from source").lead_id == target.pk
    assert Event.objects.filter(type="lead.merged").count() == 1


def test_unsubscribe_event_marks_lead():
    lead = LeadFactory.create(email="u@example.com")
    event = EventFactory.create(
        lead=None, email="u@example.com", type="email.unsubscribed", name=""
    )
    events_process(event_ids=[event.pk])
    lead.refresh_from_db()
    assert lead.unsubscribed is True
    change = Event.objects.get(type="field.changed", lead=lead)
    assert change.properties == {"field": "unsubscribed", "from": False, "to": True}
    assert change.depth == 1


def test_celery_is_configured_for_at_least_once():
    conf = celery_app.conf
    assert (
        conf.task_acks_late,
        conf.task_reject_on_worker_lost,
        conf.worker_prefetch_multiplier,
    ) == (
        True,
        True,
        1,
    )


def test_an_event_by_user_id_links_its_lead_and_never_moves_activity_back():
    now = timezone.now()
    lead = LeadFactory.create(external_id="u-1", last_activity_at=now)
    late = unprocessed(occurred_at=now - dt.timedelta(days=1))
    events_process(event_ids=[late.pk])
    late.refresh_from_db()
    lead.refresh_from_db()
    assert (late.lead_id, lead.last_activity_at) == (lead.pk, now)
    fresh = unprocessed(occurred_at=now + dt.timedelta(minutes=1))
    events_process(event_ids=[fresh.pk])
    lead.refresh_from_db()
    assert lead.last_activity_at == now + dt.timedelta(minutes=1)
    assert Lead.objects.count() == 1


def test_an_event_with_more_than_a_known_user_id_is_resolved_in_full():
    lead = LeadFactory.create(external_id="u-1", email="")
    event = unprocessed(email="ada@example.com", anonymous_id="anon-1")
    events_process(event_ids=[event.pk])
    lead.refresh_from_db()
    assert lead.email == "ada@example.com"
    assert lead.identities.filter(kind="anonymous_id", value="anon-1").exists()
    event.refresh_from_db()
    assert (event.lead_id, event.processed_at is not None) == (lead.pk, True)


def test_a_non_activity_event_about_a_known_lead_leaves_its_activity():
    lead = LeadFactory.create(last_activity_at=None)
    event = EventFactory.create(lead=lead, type="email.delivered", name="")
    events_process(event_ids=[event.pk])
    lead.refresh_from_db()
    event.refresh_from_db()
    assert (lead.last_activity_at, event.processed_at is not None) == (None, True)

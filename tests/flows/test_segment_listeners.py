"""Entries into segments that nothing but other segments hear: the per-lead
check settles segments that refer to segments in the same call, writes the
entries' events processed, and hands the loop only the events a flow trigger, a
wait or an outbound hook hears, in the order they happened."""

from __future__ import annotations

import pytest
from django.test import TestCase

from flows.engine import segments_heard_by_flows
from flows.models import Delivery, Enrollment
from leads.models import Event, Segment, SegmentMembership
from leads.services.events import events_process
from segments.check import SEGMENT_EVENT_TYPES
from segments.services import segment_create
from tests.factories import EventFactory, HookSubscriptionFactory, LeadFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(django_capture_on_commit_callbacks):
    """CEOs, then CEOs in Germany (in the first), then German CEOs at Acme (in
    the second): each refers to the one before."""
    with django_capture_on_commit_callbacks(execute=True):
        ceos = segment_create(
            name="CEOs",
            conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]},
        )
        german = segment_create(
            name="German CEOs",
            conditions={
                "all": [
                    {"segment": ceos.pk, "op": "in"},
                    {"field": "country", "op": "is", "value": "Germany"},
                ]
            },
        )
        acme = segment_create(
            name="German CEOs at Acme",
            conditions={
                "all": [
                    {"segment": german.pk, "op": "in"},
                    {"field": "company_name", "op": "contains", "value": "Acme"},
                ]
            },
        )
    return ceos, german, acme


def identify(lead, **traits):
    EventFactory.create(lead=lead, type="identify", name="", properties=traits)
    drain()


def entries(lead):
    return list(
        Event.objects.filter(lead=lead, type__in=SEGMENT_EVENT_TYPES)
        .order_by("id")
        .values_list("type", "properties__segment_id", "depth")
    )


def test_segments_in_segments_settle_in_one_check_without_the_loop(chain):
    ceos, german, acme = chain
    lead = LeadFactory.create(country="Germany", job_title="Engineer")
    identify(lead, title="CEO")
    # One entry each, in the order the chain settles, each one deeper than the
    # one it follows (as when each entry was checked as an event of its own).
    assert entries(lead) == [
        ("segment.entered", ceos.pk, 2),
        ("segment.entered", german.pk, 3),
        ("segment.entered", acme.pk, 4),
    ]
    # No flow or hook hears them: written processed, at the moment they happened.
    written = Event.objects.filter(lead=lead, type="segment.entered")
    assert all(event.processed_at == event.occurred_at for event in written)
    assert set(
        SegmentMembership.objects.filter(lead=lead, left_at__isnull=True).values_list(
            "segment_id", flat=True
        )
    ) == {ceos.pk, german.pk, acme.pk}
    assert list(Segment.objects.order_by("id").values_list("member_count", flat=True)) == [1, 1, 1]

    identify(lead, title="Engineer")
    assert entries(lead)[3:] == [
        ("segment.left", ceos.pk, 2),
        ("segment.left", german.pk, 3),
        ("segment.left", acme.pk, 4),
    ]
    assert not SegmentMembership.objects.filter(lead=lead, left_at__isnull=True).exists()
    assert list(Segment.objects.order_by("id").values_list("member_count", flat=True)) == [0, 0, 0]


def test_flows_hear_the_entries_they_trigger_on_in_order(chain):
    ceos, _, acme = chain
    for segment in (acme, ceos):
        published(
            f"Entered {segment.name}",
            graph(
                ("t", "segment.entered", {"segment": segment.pk}),
                ("tag", "tag.add", {"tag": f"in-{segment.pk}"}),
            ),
        )
    lead = LeadFactory.create(country="Germany", job_title="Engineer")
    identify(lead, title="CEO")
    heard = Event.objects.filter(lead=lead, type="segment.entered").order_by("id")
    enrollments = Enrollment.objects.filter(lead=lead).order_by("id")
    assert [e.trigger_event_id for e in enrollments] == [heard[0].pk, heard[2].pk]
    assert [e.flow.name for e in enrollments] == ["Entered CEOs", "Entered German CEOs at Acme"]
    assert set(lead.tags.values_list("name", flat=True)) == {f"in-{ceos.pk}", f"in-{acme.pk}"}
    # The one nobody hears was written processed; every one is processed.
    assert heard[1].processed_at == heard[1].occurred_at
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_a_wait_hears_the_entry_it_waits_for(chain):
    german = chain[1]
    published(
        "Trial until German CEO",
        graph(
            ("t", "app.event", {"event": "Signed up for trial"}),
            (
                "u",
                "wait.until",
                {
                    "event": {"type": "segment.entered", "config": {"segment": german.pk}},
                    "within_days": 3,
                },
            ),
            extra=(("met", "tag.add", {"tag": "became-german-ceo"}),),
            branches=(("u", "met", "met"),),
        ),
    )
    assert segments_heard_by_flows(SEGMENT_EVENT_TYPES) == {("segment.entered", german.pk)}
    lead = LeadFactory.create(country="Germany", job_title="Engineer")
    EventFactory.create(lead=lead, type="track", name="Signed up for trial")
    drain()
    identify(lead, title="CEO")
    assert list(lead.tags.values_list("name", flat=True)) == ["became-german-ceo"]


def test_a_hook_on_exits_hears_every_exit_and_no_entry(chain):
    ceos, german, acme = chain
    hook = HookSubscriptionFactory.create(events=["segment.left"])
    lead = LeadFactory.create(country="Germany", job_title="Engineer")
    for traits in ({"title": "CEO"}, {"title": "Engineer"}):
        EventFactory.create(lead=lead, type="identify", name="", properties=traits)
        with TestCase.captureOnCommitCallbacks(execute=False):
            events_process(event_ids=[Event.objects.filter(processed_at__isnull=True).get().pk])
    left = Event.objects.filter(lead=lead, type="segment.left").order_by("id")
    assert [e.properties["segment_id"] for e in left] == [ceos.pk, german.pk, acme.pk]
    assert sorted(Delivery.objects.values_list("key", flat=True)) == sorted(
        f"hook:{hook.pk}:segment.left:{event.pk}" for event in left
    )
    assert not Event.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("chain")
def test_member_counts_move_after_the_commit_in_their_own_statement():
    lead = LeadFactory.create(country="Germany", job_title="Engineer")
    for title, counts in (("CEO", [1, 1, 1]), ("Engineer", [0, 0, 0])):
        event = EventFactory.create(
            lead=lead, type="identify", name="", properties={"title": title}
        )
        # As the worker runs it: each event commits, then the counts move.
        events_process(event_ids=[event.pk])
        assert list(Segment.objects.order_by("id").values_list("member_count", flat=True)) == counts

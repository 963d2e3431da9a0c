"""The single-lead segment check, pinned statement by statement.

``segments_check_lead`` runs for every event a segment depends on, so a round
trip added to it costs every such event (bench/segmentation.py measures it). In a
batch, after its first check, a check that changes nothing is one statement
whatever the number of segments: the lead's stays and exclusions and every
dependent segment's conditions, as columns of one query on the lead's row. The
first check of a batch reads the dynamic segments and their keys once.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.scope import kept_forget, processing_batch
from leads.models import Lead, SegmentMembership
from segments.check import conditions_hold
from segments.services import segment_create, segments_check_lead
from tests.factories import EventFactory, LeadFactory, SegmentMembershipFactory

pytestmark = pytest.mark.django_db

DECISION_MAKERS = {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}
PRICING = {
    "all": [
        {
            "activity": "page",
            "where": {"url": {"op": "contains", "value": "/pricing"}},
            "count": {"op": "gte", "value": 2},
            "within_days": 30,
        }
    ]
}


def normalize(sql: str) -> str:
    """Quotes and values out: the same text on PostgreSQL and SQLite."""
    sql = sql.replace('"', "")
    sql = re.sub(r"'[^']*'", "?", sql)
    return re.sub(r"\b\d+\b", "?", sql)


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [normalize(q["sql"]) for q in captured.captured_queries]


@pytest.fixture
def segments(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return [
            segment_create(name="Decision makers", conditions=DECISION_MAKERS),
            segment_create(name="Pricing visitors", conditions=PRICING),
        ]


def test_a_check_in_a_batch_is_one_statement(segments):
    lead = LeadFactory.create(job_title="CEO")
    SegmentMembershipFactory.create(segment=segments[0], lead=lead, source="condition")
    fresh = Lead.objects.get(pk=lead.pk)
    kept_forget()
    with processing_batch(), transaction.atomic():
        with CaptureQueriesContext(connection) as first:
            segments_check_lead(lead=fresh, keys={"lead.created"})
        with CaptureQueriesContext(connection) as later:
            segments_check_lead(lead=fresh, keys={"lead.created"})
    with (
        processing_batch(),
        transaction.atomic(),
        CaptureQueriesContext(connection) as next_batch,
    ):
        segments_check_lead(lead=fresh, keys={"lead.created"})
    # The first of the worker's batches reads what the dynamic segments are
    # (a digest of each), then the segments themselves; on PostgreSQL, also
    # which segment events flows and hooks hear, as the statement writes the
    # moves' events too. Then, as every later check: one statement with the
    # lead's stays, exclusions and every dependent segment's answer as columns
    # of the lead's row.
    pg = connection.vendor == "postgresql"
    heard = statements(first)[2:-1]
    assert [q.split(" FROM ")[1].split()[0] for q in heard] == (
        [
            "flows_triggersubscription",
            "flows_triggersubscription",
            "flows_flowversion",
            "flows_hooksubscription",
        ]
        if pg
        else []
    )
    assert len(first.captured_queries) == 3 + len(heard)
    assert statements(first)[0].startswith("SELECT id, name, ")
    assert statements(first)[1].startswith("SELECT leads_segment.id AS pk, leads_segment.name ")
    assert statements(first)[-1:] == statements(later)
    assert len(later.captured_queries) == 1
    # A later batch reads the digests again, and builds nothing while they are
    # the same.
    # The same goes for the flows' routes (the first two of the reads of who
    # hears segment events: their signature, then the routes).
    kept = heard[:1] + heard[2:]
    assert statements(next_batch) == [statements(first)[0], *kept, *statements(later)]
    evaluation = statements(later)[0]
    if connection.vendor == "postgresql":
        # There the evaluation leads the statement that also writes the moves.
        assert evaluation.startswith("WITH verdict AS MATERIALIZED (SELECT ")
        assert "entered AS (INSERT INTO leads_segmentmembership " in evaluation
        evaluation = evaluation[
            len("WITH verdict AS MATERIALIZED (") : evaluation.index("), decided AS (")
        ]
    assert f" AS s{segments[0].pk}" in evaluation
    assert f" AS s{segments[1].pk}" in evaluation
    # The lead's events are read once, for every activity rule, in the pricing
    # rule's window.
    assert re.search(
        r" AS kept_out FROM leads_lead, \(SELECT COUNT\(\*\) FILTER \(WHERE .*\) AS n\w+ "
        r"FROM leads_event WHERE leads_event.lead_id = (%s|\?) AND leads_event.type IN \((%s|\?)\) "
        r"AND leads_event.occurred_at >= (%s|\?)\) lf_activity WHERE leads_lead.id = (%s|\?)$",
        evaluation,
    )
    assert evaluation.count("FROM leads_event") == 1
    # Nothing changed: still in the first, not in the second.
    assert list(
        SegmentMembership.objects.filter(lead=lead, left_at__isnull=True).values_list(
            "segment__name", flat=True
        )
    ) == ["Decision makers"]


def test_a_check_that_changes_answers_from_the_same_reads(segments):
    # Given a member of the first who no longer matches it and now matches the second.
    lead = LeadFactory.create(job_title="Intern")
    SegmentMembershipFactory.create(segment=segments[0], lead=lead, source="condition")
    for _ in range(2):
        EventFactory.create(lead=lead, type="page", name="", properties={"url": "/pricing"})
    with processing_batch(), transaction.atomic():
        segments_check_lead(lead=lead, keys={"lead.created"})
    stays = SegmentMembership.objects.filter(lead=lead).order_by("segment_id")
    assert [(s.segment.name, s.left_at is None) for s in stays] == [
        ("Decision makers", False),
        ("Pricing visitors", True),
    ]


def test_activity_rules_read_the_leads_events_in_one_pass(django_capture_on_commit_callbacks):
    # Given segments counting pages, opens and an app event, in windows and ever,
    # two of them the same events with another count.
    with django_capture_on_commit_callbacks(execute=True):
        for name, rule in [
            ("Pricing twice", PRICING["all"][0]),
            ("Pricing five times", {**PRICING["all"][0], "count": {"op": "gte", "value": 5}}),
            ("Opened lately", {"activity": "email.opened", "within_days": 7}),
            (
                "Never logged in",
                {"activity": "track", "name": "Logged in", "count": {"op": "eq", "value": 0}},
            ),
        ]:
            segment_create(name=name, conditions={"all": [rule]})
    lead = LeadFactory.create()
    for _ in range(2):
        EventFactory.create(lead=lead, type="page", name="", properties={"url": "/pricing"})
    EventFactory.create(lead=lead, type="email.opened", name="")
    with processing_batch(), transaction.atomic():
        segments_check_lead(lead=lead, keys={"lead.created"})
        with CaptureQueriesContext(connection) as later:
            segments_check_lead(lead=lead, keys={"lead.created"})
    # One pass over the lead's events of the three types, with no window (one
    # rule reaches back for ever), and one count per distinct set of events.
    (evaluation,) = statements(later)
    assert evaluation.count("FROM leads_event") == 1
    assert evaluation.count("COUNT(*) FILTER") == 3
    assert (
        "leads_event.type IN (?, ?, ?)" in evaluation
        or "leads_event.type IN (%s, %s, %s)" in evaluation
    )
    pass_over = re.search(r"FROM leads_event WHERE (.*)\) lf_activity WHERE", evaluation)
    assert pass_over is not None
    assert "occurred_at" not in pass_over.group(1)
    stays = SegmentMembership.objects.filter(lead=lead, left_at__isnull=True)
    assert sorted(stays.values_list("segment__name", flat=True)) == [
        "Never logged in",
        "Opened lately",
        "Pricing twice",
    ]


def test_a_flows_condition_is_the_checks_statement_for_one_tree():
    # Given a CEO who saw the pricing page twice, and an intern who did not.
    ceo = LeadFactory.create(job_title="CEO")
    intern = LeadFactory.create(job_title="Intern")
    for _ in range(2):
        EventFactory.create(lead=ceo, type="page", name="", properties={"url": "/pricing"})
    tree = {"all": [DECISION_MAKERS["all"][0], PRICING["all"][0]]}
    now = timezone.now()
    # When a flow's if / else asks for each,
    answers = [conditions_hold(lead_id=lead.pk, tree=tree, now=now) for lead in (ceo, intern)]
    with CaptureQueriesContext(connection) as later:
        conditions_hold(lead_id=ceo.pk, tree=tree, now=now)
    # then the CEO matches, the intern does not, and asking again is one
    # statement on the lead's row with one pass over its events.
    assert answers == [True, False]
    (statement,) = statements(later)
    assert statement.count("FROM leads_event") == 1
    assert statement.endswith("lf_activity WHERE leads_lead.id = %s") or statement.endswith(
        "lf_activity WHERE leads_lead.id = ?"
    )

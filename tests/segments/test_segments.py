import datetime as dt
import io
import random

import pytest
from django.db import transaction
from django.utils import timezone

from core.scope import processing_batch
from leads.models import Event, Lead, Segment, SegmentMembership
from leads.services.events import events_process
from segments.check import ALWAYS, SegmentIndex, segment_index
from segments.services import (
    dependency_keys,
    segment_create,
    segment_recompute,
    segments_check_lead,
    segments_on_event,
)
from tests.factories import (
    EventFactory,
    FieldDefinitionFactory,
    LeadFactory,
    SegmentMembershipFactory,
)

pytestmark = pytest.mark.django_db

CEOS = {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}


def members(segment):
    return sorted(
        str(e)
        for e in Lead.objects.filter(
            memberships__segment=segment, memberships__left_at__isnull=True
        ).values_list("email", flat=True)
    )


def segment_events(type_):
    return sorted(
        (str(e.lead.email if e.lead else None), e.properties["segment_id"])
        for e in Event.objects.filter(type=type_).select_related("lead")
    )


@pytest.fixture
def create(marketer_api, django_capture_on_commit_callbacks):
    def _create(payload):
        with django_capture_on_commit_callbacks(execute=True):
            return marketer_api.post("/api/v1/segments/", payload, format="json")

    return _create


def test_create_recomputes_and_announces_each_entry_once(create):
    LeadFactory.create(email="a@x.example", job_title="CEO")
    LeadFactory.create(email="b@x.example", job_title="Intern")
    response = create({"name": "CEOs", "conditions": CEOS})
    assert response.status_code == 201, response.json()
    segment = Segment.objects.get()
    assert response.json()["kind"] == "dynamic"
    assert members(segment) == ["a@x.example"]
    segment.refresh_from_db()
    assert segment.member_count == 1
    segment_recompute(segment=segment)
    assert segment_events("segment.entered") == [("a@x.example", segment.pk)]


def test_incremental_entry_and_exit_through_the_pipeline(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_create(name="CEOs", conditions=CEOS)
    lead = LeadFactory.create(email="c@x.example", job_title="Engineer")
    promote = EventFactory.create(
        lead=None, type="identify", name="", email="c@x.example", properties={"title": "CEO"}
    )
    events_process(event_ids=[promote.pk])
    assert members(segment) == ["c@x.example"]
    demote = EventFactory.create(
        lead=None, type="identify", name="", email="c@x.example", properties={"title": "CTO"}
    )
    events_process(event_ids=[demote.pk])
    assert members(segment) == []
    assert segment_events("segment.entered") == [("c@x.example", segment.pk)]
    assert segment_events("segment.left") == [("c@x.example", segment.pk)]
    stays = list(SegmentMembership.objects.filter(lead=lead).values_list("left_at", flat=True))
    assert len(stays) == 1
    assert stays[0] is not None
    segment.refresh_from_db()
    assert segment.member_count == 0


def test_activity_segment_updates_when_the_event_arrives(django_capture_on_commit_callbacks):
    tree = {
        "all": [
            {
                "activity": "page",
                "where": {"url": {"op": "contains", "value": "/pricing"}},
                "count": {"op": "gte", "value": 2},
                "within_days": 30,
            }
        ]
    }
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_create(name="Pricing twice", conditions=tree)
    lead = LeadFactory.create(email="p@x.example")
    for n in range(2):
        event = EventFactory.create(
            lead=lead,
            type="page",
            properties={"url": "https://x.example/pricing"},
            idempotency_key=f"p{n}",
        )
        events_process(event_ids=[event.pk])
        assert members(segment) == ([] if n == 0 else ["p@x.example"])


def test_segment_of_segments_and_cycles(create, marketer_api):
    LeadFactory.create(email="a@x.example", job_title="CEO", company_size=50)
    LeadFactory.create(email="b@x.example", job_title="CEO", company_size=5)
    ceos = create({"name": "CEOs", "conditions": CEOS}).json()
    big = create(
        {
            "name": "Big-company CEOs",
            "conditions": {
                "all": [
                    {"segment": ceos["id"], "op": "in"},
                    {"field": "company_size", "op": "gte", "value": 25},
                ]
            },
        }
    ).json()
    assert members(Segment.objects.get(pk=big["id"])) == ["a@x.example"]
    cycle = marketer_api.patch(
        f"/api/v1/segments/{ceos['id']}/",
        {"conditions": {"all": [{"segment": big["id"], "op": "not_in"}]}},
        format="json",
    )
    assert cycle.status_code == 400
    assert cycle.json()["error"]["fields"] == {
        "conditions": ["Segments would refer to each other in a cycle."]
    }
    unknown = create({"name": "X", "conditions": {"all": [{"segment": 999999, "op": "in"}]}})
    assert unknown.json()["error"]["fields"] == {
        "conditions.all[0].segment": ["The chosen segment does not exist any more."]
    }
    in_use = marketer_api.delete(f"/api/v1/segments/{ceos['id']}/")
    assert in_use.status_code == 400
    assert in_use.json()["error"]["fields"] == {
        "segment": ["Used by the segments: Big-company CEOs."]
    }


def test_bad_tree_is_400_with_paths(create):
    response = create(
        {
            "name": "Bad",
            "conditions": {
                "all": [
                    {"field": "shoe_size", "op": "gte", "value": 10},
                    {"any": [{"field": "stage", "op": "is", "value": "vip"}]},
                ]
            },
        }
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "conditions.all[0].field": ["There is no field called “shoe_size”."],
        "conditions.all[1].any[0].value": [
            "Choose from: subscriber, lead, mql, sql, opportunity, customer, lost, disqualified."
        ],
    }
    assert not Segment.objects.exists()


def test_preview_counts_and_samples_an_unsaved_tree(marketer_api):
    for n in range(25):
        LeadFactory.create(email=f"ceo{n}@x.example", job_title="CEO")
    LeadFactory.create(email="dev@x.example", job_title="Developer")
    response = marketer_api.post("/api/v1/segments/preview/", {"conditions": CEOS}, format="json")
    body = response.json()
    assert body["count"] == 25
    assert len(body["sample"]) == 20
    assert all(lead["job_title"] == "CEO" for lead in body["sample"])
    bad = marketer_api.post(
        "/api/v1/segments/preview/",
        {"conditions": {"all": [{"field": "nope", "op": "is", "value": "x"}]}},
        format="json",
    )
    assert bad.json()["error"]["fields"] == {
        "conditions.all[0].field": ["There is no field called “nope”."]
    }


def test_static_segment_add_remove_and_csv(create, marketer_api):
    a = LeadFactory.create(email="a@x.example")
    LeadFactory.create(email="b@x.example")
    LeadFactory.create(email="c@x.example")
    static = create({"name": "Trade fair 2026", "kind": "static"}).json()
    url = f"/api/v1/segments/{static['id']}"
    added = marketer_api.post(
        f"{url}/members/add/",
        {"leads": [a.pk], "emails": ["B@x.example", "nobody@x.example"]},
        format="json",
    )
    assert added.json() == {"changed": 2, "not_found": ["nobody@x.example"]}
    again = marketer_api.post(f"{url}/members/add/", {"leads": [a.pk]}, format="json")
    assert again.json()["changed"] == 0
    csv_file = io.BytesIO(b"Email,Name\nc@x.example,C\nghost@x.example,G\n")
    csv_file.name = "fair.csv"
    imported = marketer_api.post(f"{url}/members/import/", {"file": csv_file}, format="multipart")
    assert imported.json() == {"changed": 1, "not_found": ["ghost@x.example"]}
    segment = Segment.objects.get(pk=static["id"])
    assert members(segment) == ["a@x.example", "b@x.example", "c@x.example"]
    removed = marketer_api.post(
        f"{url}/members/remove/", {"emails": ["a@x.example"]}, format="json"
    )
    assert removed.json()["changed"] == 1
    listed = marketer_api.get(f"{url}/members/").json()["results"]
    assert sorted(r["email"] for r in listed) == ["b@x.example", "c@x.example"]
    history = marketer_api.get(f"/api/v1/leads/{a.pk}/segments/").json()["results"]
    assert [(h["segment_name"], h["left_at"] is not None, h["source"]) for h in history] == [
        ("Trade fair 2026", True, "manual")
    ]
    dynamic_add = create({"name": "CEOs", "conditions": CEOS}).json()
    refused = marketer_api.post(
        f"/api/v1/segments/{dynamic_add['id']}/members/add/", {"leads": [a.pk]}, format="json"
    )
    assert refused.json()["error"]["fields"] == {
        "segment": ["Leads are added by hand to static segments only."]
    }


def test_excluded_lead_stays_out_until_included(
    create, marketer_api, django_capture_on_commit_callbacks
):
    lead = LeadFactory.create(email="a@x.example", job_title="CEO")
    segment_id = create({"name": "CEOs", "conditions": CEOS}).json()["id"]
    segment = Segment.objects.get(pk=segment_id)
    out = marketer_api.post(
        f"/api/v1/segments/{segment_id}/exclude/", {"leads": [lead.pk]}, format="json"
    )
    assert out.json()["changed"] == 1
    segment_recompute(segment=segment)
    event = EventFactory.create(
        lead=lead, type="identify", name="", properties={"title": "CEO & Founder"}
    )
    events_process(event_ids=[event.pk])
    assert members(segment) == []
    back = marketer_api.post(
        f"/api/v1/segments/{segment_id}/include/", {"leads": [lead.pk]}, format="json"
    )
    assert back.json()["changed"] == 1
    assert members(segment) == ["a@x.example"]
    assert len(segment_events("segment.entered")) == 2
    assert len(segment_events("segment.left")) == 1


def test_sales_reads_segments_but_cannot_edit(sales_api, create):
    create({"name": "CEOs", "conditions": CEOS})
    assert sales_api.get("/api/v1/segments/").status_code == 200
    assert (
        sales_api.post(
            "/api/v1/segments/", {"name": "X", "kind": "static"}, format="json"
        ).status_code
        == 403
    )


def test_segment_list_query_count(marketer_api, django_assert_max_num_queries):
    for n in range(15):
        segment_create(name=f"S{n}", kind="static")
    with django_assert_max_num_queries(4):
        response = marketer_api.get("/api/v1/segments/")
    assert len(response.json()["results"]) == 15


def test_merge_moves_static_membership(django_capture_on_commit_callbacks):
    static = segment_create(name="Fair", kind="static")
    from segments.services import segment_add_leads

    anon_event = EventFactory.create(
        lead=None, type="track", anonymous_id="anon-1", idempotency_key="a1"
    )
    events_process(event_ids=[anon_event.pk])
    anon = Lead.objects.get()
    segment_add_leads(segment=static, lead_ids=[anon.pk])
    identify = EventFactory.create(
        lead=None,
        type="identify",
        name="",
        user_id="u1",
        anonymous_id="anon-1",
        email="k@x.example",
        idempotency_key="i1",
    )
    known = LeadFactory.create(email="k@x.example")
    events_process(event_ids=[identify.pk])
    assert members(static) == ["k@x.example"]
    assert not Lead.objects.filter(pk=anon.pk).exists()
    assert known.memberships.count() == 1


def test_segments_refresh_command(capsys):
    from django.core.management import call_command

    segment = segment_create(name="CEOs", conditions=CEOS)
    LeadFactory.create(email="a@x.example", job_title="CEO")
    call_command("segments_refresh", "--segment", str(segment.pk))
    assert capsys.readouterr().out == "CEOs: 1 entered, 0 left, 1 members\n"
    call_command("segments_refresh")
    assert capsys.readouterr().out == "CEOs: 0 entered, 0 left, 1 members\n"


def test_the_event_being_processed_counts_for_activity_rules(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_create(
            name="Opened", conditions={"all": [{"activity": "email.opened", "within_days": 30}]}
        )
    LeadFactory.create(email="o@x.example")
    opened = EventFactory.create(lead=None, email="o@x.example", type="email.opened", name="")
    events_process(event_ids=[opened.pk])
    assert members(segment) == ["o@x.example"]


def test_single_lead_check_is_one_statement_for_any_number_of_segments(
    django_capture_on_commit_callbacks, django_assert_num_queries
):
    FieldDefinitionFactory.create(key="seats", type="number")
    trees = {
        "CEOs": CEOS,
        "Big accounts": {"all": [{"field": "custom.seats", "op": "gte", "value": 50}]},
        "Engaged": {"all": [{"field": "score.engagement", "op": "gte", "value": 0}]},
        "Pricing visitors": {
            "all": [
                {
                    "activity": "page",
                    "where": {"url": {"op": "contains", "value": "/pricing"}},
                    "count": {"op": "gte", "value": 2},
                    "within_days": 30,
                }
            ]
        },
    }
    with django_capture_on_commit_callbacks(execute=True):
        segments = {name: segment_create(name=name, conditions=t) for name, t in trees.items()}
    lead = LeadFactory.create(job_title="CEO", custom_fields={"seats": 80})
    # In CEOs, Big accounts and Engaged already; nothing to change.
    for name in ("CEOs", "Big accounts", "Engaged"):
        SegmentMembershipFactory.create(segment=segments[name], lead=lead, source="condition")
    fresh = Lead.objects.get(pk=lead.pk)
    with processing_batch():
        # The segments and the keys they depend on are read once per batch, and
        # the statement compiled once (the custom field types read for it).
        segments_check_lead(lead=fresh, keys={ALWAYS})
        # The conditions of all four, with the lead's stays and exclusions.
        with transaction.atomic(), django_assert_num_queries(1):
            segments_check_lead(lead=fresh, keys={ALWAYS})
        # Nothing depends on a bounce: no query at all.
        with django_assert_num_queries(0):
            segments_check_lead(lead=fresh, keys={"activity:email.bounced"})

    for _ in range(2):
        EventFactory.create(lead=lead, type="page", name="", properties={"url": "/pricing"})
    lead.job_title = "Intern"
    lead.save()
    with transaction.atomic():
        segments_check_lead(lead=lead, keys={ALWAYS})
    assert sorted(
        SegmentMembership.objects.filter(lead=lead, left_at__isnull=True).values_list(
            "segment__name", flat=True
        )
    ) == ["Big accounts", "Engaged", "Pricing visitors"]


def test_the_api_says_while_a_refresh_runs_and_when_the_last_one_finished(
    marketer_api, django_capture_on_commit_callbacks
):
    LeadFactory.create(email="a@x.example", job_title="CEO")
    segment = segment_create(name="CEOs", conditions=CEOS)
    segment_recompute(segment=segment)
    finished = Segment.objects.get(pk=segment.pk).last_refreshed_at
    assert finished is not None

    # Asked for, not yet run by a worker (the task runs after commit).
    response = marketer_api.post(f"/api/v1/segments/{segment.pk}/refresh/")
    assert response.status_code == 202
    body = response.json()
    assert body["refreshing"] is True
    assert body["last_refreshed_at"] == finished.isoformat().replace("+00:00", "Z")
    assert marketer_api.get(f"/api/v1/segments/{segment.pk}/").json()["refreshing"] is True

    segment_recompute(segment=Segment.objects.get(pk=segment.pk))
    after = marketer_api.get(f"/api/v1/segments/{segment.pk}/").json()
    assert after["refreshing"] is False
    assert after["last_refreshed_at"] > body["last_refreshed_at"]


def test_a_statement_kept_from_an_earlier_check_measures_windows_from_now(
    django_capture_on_commit_callbacks,
):
    """The per-lead statement is compiled once, on a template clock, and kept:
    its windows are moved to the moment of each check."""
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        opened = segment_create(
            name="Opened lately",
            conditions={"all": [{"activity": "email.opened", "within_days": 30}]},
        )
        active = segment_create(
            name="Active lately",
            conditions={"all": [{"field": "last_activity_at", "op": "in_last_days", "value": 2}]},
        )
    recent = LeadFactory.create(
        email="recent@x.example", last_activity_at=now - dt.timedelta(days=1)
    )
    old = LeadFactory.create(email="old@x.example", last_activity_at=now - dt.timedelta(days=3))
    EventFactory.create(lead=recent, type="email.opened", occurred_at=now - dt.timedelta(days=29))
    EventFactory.create(lead=old, type="email.opened", occurred_at=now - dt.timedelta(days=31))
    with processing_batch():
        for lead in (recent, old, recent, old):
            with transaction.atomic():
                segments_check_lead(lead=lead, keys={ALWAYS})
    assert members(opened) == ["recent@x.example"]
    assert members(active) == ["recent@x.example"]


def test_an_app_event_rechecks_only_the_segments_counting_its_name(django_assert_num_queries):
    """A segment counting "Logged in" cannot change with "Used a feature": that
    event evaluates nothing for it."""
    logged_in = segment_create(
        name="Logged in twice",
        conditions={
            "all": [{"activity": "track", "name": "Logged in", "count": {"op": "gte", "value": 2}}]
        },
    )
    lead = LeadFactory.create(email="t@x.example")
    EventFactory.create(lead=lead, type="track", name="Logged in")
    feature = EventFactory.create(lead=lead, type="track", name="Used a feature")
    second = EventFactory.create(lead=lead, type="track", name="Logged in")
    with processing_batch():
        segments_check_lead(lead=lead, keys=set())  # the index read once for the batch
        with django_assert_num_queries(0):
            segments_on_event(event=feature, lead=lead)
        with transaction.atomic():
            segments_on_event(event=second, lead=lead)
    assert members(logged_in) == ["t@x.example"]


def test_a_score_or_grade_change_rechecks_only_the_segments_whose_rules_it_crosses(
    django_capture_on_commit_callbacks,
):
    """Most of an account's segments read scores and grades; a score from 12 to
    15 cannot move a lead in or out of "score at least 50"."""
    rules = {
        "Score 50+": {"field": "score", "op": "gte", "value": 50},
        "Score 14+": {"field": "score", "op": "gte", "value": 14},
        "Score 10 to 20": {"field": "score", "op": "between", "value": [10, 20]},
        "Engaged 5+": {"field": "score.engagement", "op": "gte", "value": 5},
        "Fit 5+": {"field": "score.fit", "op": "gte", "value": 5},
        "Hot": {"field": "grade", "op": "is", "value": "hot"},
        "Fit A": {"field": "fit_grade", "op": "in", "value": ["A"]},
        "Graded": {"field": "engagement_grade", "op": "is_set"},
    }
    with django_capture_on_commit_callbacks(execute=True):
        made = {
            name: segment_create(name=name, conditions={"all": [rule]})
            for name, rule in rules.items()
        }
    # A lead at 12 points, in the one segment that holds at 12, whose score then
    # rose to 15.
    lead = LeadFactory.create(email="s@x.example", score=15)
    SegmentMembershipFactory.create(segment=made["Score 10 to 20"], lead=lead, source="condition")
    scored = EventFactory.create(
        lead=lead,
        type="score.changed",
        name="engagement",
        properties={
            "from": 12,
            "to": 15,
            "category": "engagement",
            "category_from": 3,
            "category_to": 6,
            "delta": 3,
        },
    )
    graded = EventFactory.create(
        lead=lead,
        type="grade.changed",
        name="hot",
        properties={"from": "warm", "to": "hot", "fit_from": "B", "fit_to": "B"},
    )
    untold = EventFactory.create(
        lead=lead, type="score.changed", name="fit", properties={"category": "fit"}
    )
    with processing_batch():
        index = segment_index()

        def checked(event):
            return [w.name for w in index.candidates(dependency_keys(event), event)]

        assert checked(scored) == ["Score 14+", "Engaged 5+"]
        # The engagement axis's values are not told: its rule is always checked.
        assert checked(graded) == ["Hot", "Graded"]
        # An event that does not tell its values checks everything it can reach.
        assert checked(untold) == ["Score 50+", "Score 14+", "Score 10 to 20", "Fit 5+"]
        with transaction.atomic():
            segments_on_event(event=scored, lead=lead)
    stays = SegmentMembership.objects.filter(lead=lead, left_at__isnull=True).order_by("segment_id")
    assert [stay.segment.name for stay in stays] == ["Score 14+", "Score 10 to 20"]


def test_the_segments_a_score_change_crosses_are_found_by_their_values_as_by_asking_each():
    """With hundreds of segments on scores, the check finds those a move can
    change by the values their rules cross: the same segments, in the same
    order, as asking every segment that reads the score."""
    rng = random.Random(7)
    ops = ["gte", "gt", "lte", "lt", "eq", "ne", "between", "is_set", "is_not_set"]
    for n in range(60):
        field = rng.choice(["score", "score", "score.engagement"])
        op = rng.choice(ops)
        value: object = rng.choice([0, 5, 10, 12, 20, 50, -3])
        if op == "between":
            value = sorted([rng.randint(-5, 40), rng.randint(-5, 40)])
        rule: dict[str, object] = {"field": field, "op": op}
        if not op.startswith("is_"):
            rule["value"] = value
        extra = [{"field": "job_title", "op": "contains", "value": "CEO"}] if n % 7 == 0 else []
        segment_create(name=f"Rule {n}", conditions={"all": [rule, *extra]})
    with processing_batch():
        index = segment_index()
    assert set(index.crossings) == {"field:score", "field:score.engagement"}
    asking = SegmentIndex(by_key=index.by_key)
    values = [None, -5, 0, 5, 10, 12, 13, 20, 49, 50, 51]
    checked = 0
    for before in values:
        for after in values:
            event = Event(
                type="score.changed",
                name="engagement",
                properties={
                    "from": before,
                    "to": after,
                    "category": "engagement",
                    "category_from": after,
                    "category_to": before,
                },
            )
            keys = {"field:score", "field:score.engagement"}
            found = [w.pk for w in index.candidates(keys, event)]
            assert found == [w.pk for w in asking.candidates(keys, event)], (before, after)
            checked += len(found)
    # Moves that cross nothing check nothing; the others, some.
    assert 0 < checked < len(values) ** 2 * 60

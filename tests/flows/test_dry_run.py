import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.forms.models import model_to_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.dryrun import flow_dry_run
from flows.lifecycle import flow_create
from flows.models import Delivery, Enrollment, Flow, Reentry, StepRun, Wakeup
from leads.models import Event, Lead, Notification, Tag, Task
from scoring.models import LeadScore, ScoreChange
from segments.conditions import FIELD_TYPES, OPERATORS, compile_tree
from segments.conditions.truth import field_rule_truth
from segments.services import segment_create
from tests.factories import (
    EventFactory,
    FieldDefinitionFactory,
    LeadFactory,
    TaskFactory,
    UserFactory,
)
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
DEMO = {"type": "track", "name": "Requested demo", "properties": {}}
START = "starts on App event: Requested demo, by the made-up event “App event: Requested demo”"


def demo_graph(**notify: Any) -> dict[str, Any]:
    """Demo request → is a CEO? yes: +5 fit → score ≥ 15? yes: notify sales, no: end;
    not a CEO: tag nurture → wait 2 days → end."""
    return graph(
        ("t", "app.event", {"event": "Requested demo"}),
        ("ceo", "condition", {"conditions": {"all": [CEO]}}),
        extra=(
            ("score", "score.adjust", {"points": 5, "category": "fit", "reason": "Decision maker"}),
            ("hot", "condition", {"conditions": {"all": [SCORE_15]}}),
            ("notify", "sales.notify", {"title": "Call {lead}", **notify}),
            ("nurture", "tag.add", {"tag": "nurture"}),
            ("wait", "wait", {"amount": 2, "unit": "days"}),
            ("end", "exit", {}),
        ),
        branches=(
            ("ceo", "yes", "score"),
            ("score", "next", "hot"),
            ("hot", "yes", "notify"),
            ("hot", "no", "end"),
            ("ceo", "no", "nurture"),
            ("nurture", "next", "wait"),
            ("wait", "next", "end"),
        ),
    )


CEO = {"field": "job_title", "op": "contains", "value": "CEO"}
SCORE_15 = {"field": "score", "op": "gte", "value": 15}


@pytest.fixture
def rep(db):
    return UserFactory.create(
        username="rep-1", first_name="Sam", last_name="Rep", email="sam@example.com", role="sales"
    )


@pytest.fixture
def flow(db) -> Flow:
    return flow_create(name="Demo requests", graph=demo_graph())


def dry_run(flow: Flow, lead: Lead, event: Any = DEMO, **kwargs: Any) -> dict[str, Any]:
    return flow_dry_run(
        flow=flow, graph=kwargs.pop("graph", flow.draft), lead=lead, event=event, now=NOW, **kwargs
    )


def steps(result: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    return [(s["node"], s["outcome"], s["effect"], s["handle"]) for s in result["steps"]]


def test_a_ceo_is_scored_then_passes_the_score_check_and_goes_to_sales(flow, rep):
    lead = LeadFactory.create(
        first_name="Kim", last_name="Lee", job_title="CEO", owner=rep, score=12
    )

    result = dry_run(flow, lead)

    assert result["trigger"] == {
        "matched": True,
        "node": "t",
        "type": "app.event",
        "summary": "App event: Requested demo",
        "event": {
            "id": None,
            "type": "track",
            "name": "Requested demo",
            "properties": {},
            "occurred_at": "2026-03-02T09:00:00+00:00",
            "made_up": True,
        },
    }
    assert result["entry"] == {
        "allowed": True,
        "reason": "Not enrolled before; this flow lets a lead in once.",
    }
    assert steps(result) == [
        ("t", "matched", START, "next"),
        ("ceo", "yes", "yes: job title contains “CEO” (“CEO”)", "yes"),
        ("score", "would_apply", "+5 Fit: Decision maker (score 12 → 17)", "next"),
        # The stored score (12) is below 15; the +5 above counts.
        ("hot", "yes", "yes: score is at least 15 (17 after the steps above)", "yes"),
        (
            "notify",
            "would_apply",
            "task 'Call Kim Lee' for Sam Rep (the owner); "
            "in-app notification and email to sam@example.com",
            "next",
        ),
    ]
    assert result["path"] == ["t", "ceo", "score", "hot", "notify"]
    assert result["edges"] == ["t-ceo", "ceo-yes-score", "score-next-hot", "hot-yes-notify"]
    assert result["notes"] == []
    assert {s["type"] for s in result["steps"]} == {
        "app.event",
        "condition",
        "score.adjust",
        "sales.notify",
    }


def test_a_ceo_whose_score_stays_low_ends_after_the_score_check(flow, rep):
    lead = LeadFactory.create(job_title="CEO", owner=rep, score=5)

    result = dry_run(flow, lead)

    assert steps(result)[2:] == [
        ("score", "would_apply", "+5 Fit: Decision maker (score 5 → 10)", "next"),
        ("hot", "no", "no: score is at least 15 (10 after the steps above)", "no"),
        ("end", "ended", "end of the flow", None),
    ]
    assert result["edges"] == ["t-ceo", "ceo-yes-score", "score-next-hot", "hot-no-end"]


def test_a_lead_who_is_not_a_ceo_is_tagged_and_waits(flow):
    lead = LeadFactory.create(job_title="Head of Marketing", score=30)

    result = dry_run(flow, lead)

    assert steps(result) == [
        ("t", "matched", START, "next"),
        ("ceo", "no", "no: job title contains “CEO” (“Head of Marketing”)", "no"),
        ("nurture", "would_apply", "add tag nurture", "next"),
        ("wait", "waited", "wait 2 days (until 2026-03-04 09:00 UTC)", "next"),
        ("end", "ended", "end of the flow", None),
    ]
    assert result["path"] == ["t", "ceo", "nurture", "wait", "end"]
    assert result["edges"] == ["t-ceo", "ceo-no-nurture", "nurture-next-wait", "wait-next-end"]
    assert result["notes"] == [
        "Waits are taken as if their time passed with nothing else happening: later steps "
        "count from their end, and a wait-until times out."
    ]


def test_score_changes_move_grade_and_stage_as_the_ledger_would(flow, rep):
    lead = LeadFactory.create(job_title="CEO", owner=rep, score=47, grade="warm", stage="lead")

    result = dry_run(flow, lead)

    assert steps(result)[2] == (
        "score",
        "would_apply",
        "+5 Fit: Decision maker (score 47 → 52, grade warm → hot, "
        "stage Lead → Marketing qualified)",
        "next",
    )


def test_without_an_owner_the_next_rep_in_turn_gets_the_task(rep):
    busy = UserFactory.create(username="rep-0", first_name="Bea", last_name="Busy", role="sales")
    TaskFactory.create(assignee=busy, title="Open task")
    lead = LeadFactory.create(first_name="Kim", last_name="Lee", job_title="CEO", score=20)
    g = demo_graph(due_in={"amount": 1, "unit": "days"}, priority="high", email=False)
    flow = flow_create(name="Demo requests", graph=g)

    result = dry_run(flow, lead)

    assert steps(result)[-1] == (
        "notify",
        "would_apply",
        "task 'Call Kim Lee' for the next sales rep in turn: Sam Rep, who becomes the owner, "
        "due in 1 day (2026-03-03 09:00 UTC), high priority; in-app notification",
        "next",
    )
    lead.refresh_from_db()
    assert lead.owner_id is None


def test_later_conditions_see_fields_tags_and_owner_set_earlier(rep):
    segment = segment_create(name="Follow up", kind="static")
    checks = {
        "all": [
            {"field": "job_title", "op": "contains", "value": "CTO"},
            {"field": "tags", "op": "has", "value": "vip"},
            {"field": "owner", "op": "is", "value": rep.pk},
            {"segment": segment.pk, "op": "in"},
            {"field": "company_name", "op": "is", "value": "Acme GmbH"},
        ]
    }
    flow = flow_create(
        name="Promote",
        graph=graph(
            ("t", "app.event", {"event": "Requested demo"}),
            ("title", "field.set", {"field": "job_title", "value": "CTO"}),
            ("tag", "tag.add", {"tag": "vip"}),
            ("owner", "owner.assign", {"user": rep.pk}),
            ("seg", "segment.add", {"segment": segment.pk}),
            ("check", "condition", {"conditions": checks}),
        ),
    )
    lead = LeadFactory.create(job_title="Intern")

    result = dry_run(flow, lead)

    assert steps(result)[1:] == [
        ("title", "would_apply", "job title: “Intern” → “CTO”", "next"),
        ("tag", "would_apply", "add tag vip", "next"),
        ("owner", "would_apply", "owner: nobody → Sam Rep", "next"),
        ("seg", "would_apply", "add to static segment Follow up", "next"),
        (
            "check",
            "yes",
            "yes: job title contains “CTO” (“CTO” after the steps above); "
            "has the tag “vip” (tags: vip after the steps above); "
            "owner is Sam Rep (Sam Rep after the steps above); "
            "in the segment “Follow up”; "
            "company name is “Acme GmbH” (“Acme GmbH”)",
            "yes",
        ),
    ]
    assert (Lead.objects.get(pk=lead.pk).job_title, Tag.objects.count()) == ("Intern", 0)


def test_custom_fields_set_earlier_are_seen_except_dates():
    FieldDefinitionFactory.create(key="plan")
    FieldDefinitionFactory.create(key="renewal", type="date")
    plan = {"field": "custom.plan", "op": "is", "value": "pro"}
    renewal = {"field": "custom.renewal", "op": "after", "value": "2026-03-15"}
    flow = flow_create(
        name="Renewals",
        graph=graph(
            ("t", "app.event", {"event": "Requested demo"}),
            ("plan", "field.set", {"field": "custom.plan", "value": "pro"}),
            ("renewal", "field.set", {"field": "custom.renewal", "value": "2026-04-01"}),
            ("pro", "condition", {"conditions": {"any": [plan, renewal]}}),
            extra=(("soon", "condition", {"conditions": {"all": [renewal]}}),),
            branches=(("pro", "yes", "soon"),),
        ),
    )
    lead = LeadFactory.create(custom_fields={"plan": "free"})

    result = dry_run(flow, lead)

    assert steps(result)[1:] == [
        ("plan", "would_apply", "plan: “free” → “pro”", "next"),
        ("renewal", "would_apply", "renewal: empty → “2026-04-01”", "next"),
        ("pro", "yes", "yes: plan is “pro” (“pro” after the steps above)", "yes"),
        (
            "soon",
            "no",
            "no: renewal is after “2026-03-15” (empty as stored; the change above is not counted)",
            "no",
        ),
    ]


SIMULATED = {
    "job_title": st.sampled_from(["", "CEO", "ceo", "Co-CEO", "Head of Sales"]),
    "company_size": st.sampled_from([None, 0, 10, 50]),
    "score": st.sampled_from([-5, 0, 10, 50]),
    "stage": st.sampled_from(["subscriber", "lead", "mql", "disqualified"]),
    "owner": st.sampled_from([None, 0, 1]),
    "tags": st.sets(st.sampled_from(["vip", "VIP", "trial"]), max_size=2),
}
RULE_VALUES = {
    "job_title": st.sampled_from(["ceo", "CEO", "co", "head", "Sales", "x"]),
    "company_size": st.sampled_from([0, 10, 11, 50]),
    "score": st.sampled_from([-5, 0, 10, 51]),
    "stage": st.sampled_from(["subscriber", "lead", "mql", "disqualified"]),
    "owner": st.sampled_from([0, 1]),
    "tags": st.sampled_from(["vip", "VIP", "trial"]),
}


@st.composite
def simulated_rules(draw: st.DrawFn) -> tuple[str, Any, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(SIMULATED)))
    kind = "tags" if name == "tags" else FIELD_TYPES[name]
    op = draw(st.sampled_from(OPERATORS[kind]))
    rule: dict[str, Any] = {"field": name, "op": op}
    values = RULE_VALUES[name]
    if op in ("in", "has_any", "has_all"):
        rule["value"] = draw(st.lists(values, min_size=1, max_size=2, unique=True))
    elif op == "between":
        rule["value"] = sorted(draw(st.lists(values, min_size=2, max_size=2)))
    elif op not in ("is_set", "is_not_set"):
        rule["value"] = draw(values)
    return name, draw(SIMULATED[name]), rule


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=simulated_rules())
def test_simulated_rules_decide_as_the_compiler_does(rep, other_sales, example):
    """A rule on a value a step changed is decided in Python: it must agree with the
    segment compiler on a lead that holds that value."""
    name, current, rule = example
    users = [rep.pk, other_sales.pk]
    if name == "owner":
        # Owners are drawn as indexes into the two users.
        current = None if current is None else users[current]
        if "value" in rule:
            value = rule["value"]
            rule["value"] = [users[v] for v in value] if isinstance(value, list) else users[value]
    with transaction.atomic():
        lead = LeadFactory.create()
        if name == "tags":
            lead.tags.set([Tag.objects.get_or_create(name=tag)[0] for tag in current])
        else:
            column = "owner_id" if name == "owner" else name
            Lead.objects.filter(pk=lead.pk).update(**{column: current})
        stored = (
            Lead.objects.filter(pk=lead.pk)
            .filter(compile_tree({"all": [rule]}, per_lead=True))
            .exists()
        )
        transaction.set_rollback(True)
    simulated = field_rule_truth(rule, current, FIELD_TYPES[name])
    assert simulated == stored, f"{rule=} {current=}"


def test_other_actions_and_waits_are_described_without_being_done():
    segment = segment_create(name="Lost", kind="static")
    flow = flow_create(
        name="Everything else",
        graph=graph(
            ("t", "app.event", {"event": "Requested demo"}),
            ("stage", "stage.change", {"stage": "mql"}),
            ("hook", "webhook.send", {"url": "https://hooks.example.com/x?token=secret"}),
            (
                "until",
                "wait.until",
                {
                    "event": {"type": "email.activity", "config": {"activity": "opened"}},
                    "within_days": 3,
                },
            ),
            extra=(
                ("untag", "tag.remove", {"tag": "vip"}),
                ("seg", "segment.remove", {"segment": segment.pk}),
                ("dq", "lead.disqualify", {"reason": "No budget"}),
                ("stop", "flow.end", {}),
                ("opened", "flow.end", {}),
            ),
            branches=(
                ("until", "met", "opened"),
                ("until", "timeout", "untag"),
                ("untag", "next", "seg"),
                ("seg", "next", "dq"),
                ("dq", "next", "stop"),
            ),
        ),
    )
    lead = LeadFactory.create(stage="sql")

    result = dry_run(flow, lead)

    assert steps(result)[1:] == [
        (
            "stage",
            "no_change",
            "stage stays Sales qualified: forward only, and Marketing qualified is behind it",
            "next",
        ),
        ("hook", "would_apply", "POST to hooks.example.com (not sent)", "next"),
        (
            "until",
            "timeout",
            "waits up to 3 days for Email opened; assumed not to happen, "
            "so it times out (2026-03-05 09:00 UTC)",
            "timeout",
        ),
        ("untag", "no_change", "has no tag vip to remove", "next"),
        ("seg", "no_change", "not in static segment Lost; nothing to remove", "next"),
        ("dq", "would_apply", "stage Sales qualified → Disqualified (No budget)", "next"),
        ("stop", "ended", "end of the flow", None),
    ]
    assert result["edges"][-5:] == [
        "hook-until",
        "until-timeout-untag",
        "untag-next-seg",
        "seg-next-dq",
        "dq-next-stop",
    ]
    assert Delivery.objects.count() == 0


def test_an_event_no_trigger_matches_says_so(flow):
    lead = LeadFactory.create()

    result = dry_run(flow, lead, {"type": "track", "name": "Downloaded whitepaper"})

    assert result["trigger"] == {
        "matched": False,
        "reason": "No trigger of this flow starts on the made-up event "
        "“App event: Downloaded whitepaper”. It starts on: App event: Requested demo.",
        "event": {
            "id": None,
            "type": "track",
            "name": "Downloaded whitepaper",
            "properties": {},
            "occurred_at": "2026-03-02T09:00:00+00:00",
            "made_up": True,
        },
    }
    assert (result["steps"], result["path"], result["edges"]) == ([], [], [])
    assert result["entry"] == {
        "allowed": True,
        "reason": "Not enrolled before; this flow lets a lead in once.",
    }


def test_without_an_event_the_lead_needs_one_that_matches(flow):
    lead = LeadFactory.create()

    result = dry_run(flow, lead, None)
    assert result["trigger"] == {
        "matched": False,
        "reason": "The lead has done nothing yet that a trigger of this flow listens for. "
        "The flow starts on: App event: Requested demo.",
        "event": None,
    }

    EventFactory.create(lead=lead, type="track", name="Created project")
    EventFactory.create(lead=lead, type="page", name="Pricing")
    result = dry_run(flow, lead, None)
    assert result["trigger"]["reason"] == (
        "The one thing the lead did that a trigger listens for does not fit its settings. "
        "The flow starts on: App event: Requested demo."
    )
    EventFactory.create(lead=lead, type="track", name="Invited a colleague")
    result = dry_run(flow, lead, None)
    assert result["trigger"]["reason"] == (
        "None of the 2 things the lead did that a trigger listens for fits its settings. "
        "The flow starts on: App event: Requested demo."
    )


def test_the_latest_real_matching_event_or_a_made_up_one():
    trigger = {"event": "Requested demo", "where": {"plan": {"op": "is", "value": "pro"}}}
    flow = flow_create(
        name="Pro demos",
        graph=graph(("t", "app.event", trigger), ("tag", "tag.add", {"tag": "pro"})),
    )
    lead = LeadFactory.create()
    pro = EventFactory.create(
        lead=lead,
        name="Requested demo",
        properties={"plan": "pro"},
        occurred_at=NOW - dt.timedelta(days=3),
    )
    EventFactory.create(
        lead=lead,
        name="Requested demo",
        properties={"plan": "free"},
        occurred_at=NOW - dt.timedelta(days=1),
    )
    EventFactory.create(lead=lead, name="Created project", occurred_at=NOW)

    real = dry_run(flow, lead, None)
    assert real["trigger"]["event"] == {
        "id": pro.pk,
        "type": "track",
        "name": "Requested demo",
        "properties": {"plan": "pro"},
        "occurred_at": "2026-02-27T09:00:00+00:00",
        "made_up": False,
    }
    assert steps(real)[0] == (
        "t",
        "matched",
        f"starts on App event: Requested demo where plan is pro, by event #{pro.pk}, "
        "“App event: Requested demo” of 2026-02-27 09:00 UTC",
        "next",
    )
    assert real["path"] == ["t", "tag"]

    free = {"type": "track", "name": "Requested demo", "properties": {"plan": "free"}}
    assert dry_run(flow, lead, free)["trigger"]["matched"] is False
    made_up = dry_run(flow, lead, {**free, "properties": {"plan": "Pro"}})
    assert (made_up["trigger"]["matched"], made_up["trigger"]["event"]["made_up"]) == (True, True)
    assert made_up["path"] == ["t", "tag"]


def test_reentry_rules_are_reported(rep):
    lead = LeadFactory.create(job_title="CEO", owner=rep)
    once = published("Once", demo_graph())
    EventFactory.create(lead=lead, name="Requested demo")
    drain()
    enrolled = Enrollment.objects.get(flow=once, lead=lead).created_at.astimezone(dt.UTC)
    lead.refresh_from_db()

    result = flow_dry_run(flow=once, graph=once.draft, lead=lead, event=DEMO)
    assert result["entry"] == {
        "allowed": False,
        "reason": f"Already enrolled once (on {enrolled:%Y-%m-%d %H:%M} UTC); "
        "this flow lets a lead in once.",
    }
    assert result["notes"] == [
        "The re-entry rule would keep this lead out now; the path shows what would happen "
        "if it came in."
    ]
    assert result["path"] == ["t", "ceo", "score", "hot", "end"]

    Flow.objects.filter(pk=once.pk).update(reentry=Reentry.DAYS, reentry_days=7)
    once.refresh_from_db()
    again = enrolled + dt.timedelta(days=7)
    assert flow_dry_run(flow=once, graph=once.draft, lead=lead, event=DEMO)["entry"] == {
        "allowed": False,
        "reason": f"Enrolled on {enrolled:%Y-%m-%d %H:%M} UTC; this flow lets a lead in at most "
        f"once per 7 days, so again from {again:%Y-%m-%d %H:%M} UTC.",
    }

    Flow.objects.filter(pk=once.pk).update(reentry=Reentry.ALWAYS)
    once.refresh_from_db()
    assert flow_dry_run(flow=once, graph=once.draft, lead=lead, event=DEMO)["entry"] == {
        "allowed": True,
        "reason": "This flow lets a lead in every time.",
    }

    g = demo_graph()
    g["nodes"][0]["config"]["once_per_lead"] = True
    assert flow_dry_run(flow=once, graph=g, lead=lead, event=DEMO)["entry"] == {
        "allowed": False,
        "reason": "Already came in through this trigger, which lets each lead through once.",
    }


def test_the_path_is_the_one_the_engine_takes(rep):
    flow = published("Demo requests", demo_graph())
    lead = LeadFactory.create(
        first_name="Kim", last_name="Lee", job_title="CEO", owner=rep, score=12
    )

    result = flow_dry_run(flow=flow, graph=flow.draft, lead=lead, event=DEMO)
    EventFactory.create(lead=lead, name="Requested demo")
    drain()

    ran = StepRun.objects.filter(enrollment__lead=lead).order_by("id")
    assert list(ran.values_list("node_id", flat=True)) == result["path"]
    lead.refresh_from_db()
    assert lead.score == 17
    assert Task.objects.get(lead=lead).title == "Call Kim Lee"


def counts(lead: Lead) -> dict[str, Any]:
    return {
        "score_changes": ScoreChange.objects.count(),
        "lead_scores": LeadScore.objects.count(),
        "tasks": Task.objects.count(),
        "notifications": Notification.objects.count(),
        "enrollments": Enrollment.objects.count(),
        "step_runs": StepRun.objects.count(),
        "wakeups": Wakeup.objects.count(),
        "deliveries": Delivery.objects.count(),
        "events": Event.objects.count(),
        "tags": Tag.objects.count(),
        "lead": model_to_dict(Lead.objects.get(pk=lead.pk), exclude=["tags"]),
        "lead_tags": sorted(Lead.objects.get(pk=lead.pk).tags.values_list("name", flat=True)),
    }


def test_the_api_runs_the_draft_and_writes_nothing(marketer_api, rep, flow, mailoutbox):
    ceo = LeadFactory.create(first_name="Kim", last_name="Lee", job_title="CEO", score=12)
    other = LeadFactory.create(job_title="Intern")
    before = {lead.pk: counts(lead) for lead in (ceo, other)}

    response = marketer_api.post(
        f"/api/v1/flows/{flow.pk}/dry-run/", {"lead": ceo.pk, "event": DEMO}, format="json"
    )
    nurtured = marketer_api.post(
        f"/api/v1/flows/{flow.pk}/dry-run/", {"lead": other.pk, "event": DEMO}, format="json"
    )

    assert (response.status_code, nurtured.status_code) == (200, 200)
    body = response.json()
    assert body["path"] == ["t", "ceo", "score", "hot", "notify"]
    assert body["steps"][-1]["effect"] == (
        "task 'Call Kim Lee' for the next sales rep in turn: Sam Rep, who becomes the owner; "
        "in-app notification and email to sam@example.com"
    )
    assert nurtured.json()["path"] == ["t", "ceo", "nurture", "wait", "end"]
    assert {lead.pk: counts(lead) for lead in (ceo, other)} == before
    assert mailoutbox == []


def test_the_api_takes_a_graph_and_reports_its_problems_per_node(marketer_api, flow):
    lead = LeadFactory.create()
    broken = graph(
        ("t", "app.event", {}),
        ("s", "score.adjust", {"points": 5, "category": "nope", "reason": "x"}),
    )

    response = marketer_api.post(
        f"/api/v1/flows/{flow.pk}/dry-run/", {"lead": lead.pk, "graph": broken}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid_graph",
            "message": "The flow has problems; see each node.",
            "fields": {},
            "nodes": {
                "t": {"config.event": ["Give the name of the app event."]},
                "s": {
                    "config.category": ["The score category “nope” does not exist: choose another."]
                },
            },
            "graph": [],
        }
    }
    empty = flow_create(name="Empty")
    response = marketer_api.post(f"/api/v1/flows/{empty.pk}/dry-run/", {"lead": lead.pk})
    assert response.json()["error"]["graph"] == [
        "Add a trigger: it decides which leads start the flow, and when."
    ]


def test_the_api_refuses_unknown_leads_bad_events_and_sales(marketer_api, sales_api, flow):
    url = f"/api/v1/flows/{flow.pk}/dry-run/"
    lead = LeadFactory.create()

    unknown = marketer_api.post(url, {"lead": lead.pk + 1000}, format="json")
    assert (unknown.status_code, unknown.json()) == (
        400,
        {
            "error": {
                "code": "invalid",
                "message": "The request has invalid fields.",
                "fields": {"lead": [f"No lead {lead.pk + 1000}."]},
            }
        },
    )
    bad = marketer_api.post(
        url, {"lead": lead.pk, "event": {"name": "x", "properties": "y"}}, format="json"
    )
    assert (bad.status_code, bad.json()["error"]["fields"]) == (
        400,
        {
            "event.type": ["This field is required."],
            "event.properties": ['Expected a dictionary of items but got type "str".'],
        },
    )
    missing = marketer_api.post("/api/v1/flows/999999/dry-run/", {"lead": lead.pk}, format="json")
    assert missing.status_code == 404
    assert sales_api.post(url, {"lead": lead.pk}, format="json").status_code == 403


def test_the_api_defaults_to_the_latest_matching_event(admin_api, flow):
    lead = LeadFactory.create(job_title="CEO")
    event = EventFactory.create(lead=lead, name="Requested demo")

    body = admin_api.post(f"/api/v1/flows/{flow.pk}/dry-run/", {"lead": lead.pk}).json()

    assert (body["trigger"]["node"], body["trigger"]["event"]["id"]) == ("t", event.pk)
    assert body["trigger"]["event"]["made_up"] is False
    assert body["trigger"]["event"]["occurred_at"] == event.occurred_at.isoformat()


def test_the_schema_documents_the_dry_run(client, admin_user):
    client.force_login(admin_user)

    schema = client.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/flows/{id}/dry-run/"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/DryRunRequest"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DryRunResult"
    }
    components = schema["components"]["schemas"]
    assert sorted(components["DryRunRequest"]["properties"]) == ["event", "graph", "lead"]
    assert components["DryRunRequest"]["required"] == ["lead"]
    assert sorted(components["DryRunResult"]["properties"]) == [
        "edges",
        "entry",
        "notes",
        "path",
        "steps",
        "trigger",
    ]
    assert sorted(components["DryRunStep"]["properties"]) == [
        "effect",
        "handle",
        "node",
        "outcome",
        "type",
    ]


def test_the_dry_run_and_the_engine_agree_on_a_nameless_leads_task(rep):
    """Both name a lead without a name or email the same way (they once did not:
    one translated the fallback, the other did not)."""
    notify = {"title": "Call {lead}", "due_in": {"amount": 2, "unit": "hours"}}
    flow = published(
        "Call",
        graph(("t", "app.event", {"event": "Requested demo"}), ("n", "sales.notify", notify)),
    )
    lead = LeadFactory.create(first_name="", last_name="", email=None, external_id="u-1", owner=rep)

    result = flow_dry_run(flow=flow, graph=flow.draft, lead=lead, event=DEMO, now=NOW)
    EventFactory.create(lead=lead, name="Requested demo")
    drain()

    task = Task.objects.get(lead=lead)
    assert task.title == f"Call lead #{lead.pk}"
    assert steps(result)[1] == (
        "n",
        "would_apply",
        f"task 'Call lead #{lead.pk}' for Sam Rep (the owner), due in 2 hours "
        "(2026-03-02 11:00 UTC); in-app notification and email to sam@example.com",
        "next",
    )
    # Due two hours from when the step ran, a moment before the task row was written.
    assert task.due_at is not None
    early = dt.timedelta(hours=2) - (task.due_at - task.created_at)
    assert dt.timedelta(0) <= early < dt.timedelta(seconds=5)

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db.models import Max, Q, Sum
from django.utils import timezone

from core.vocabulary import LEAD_ACTIVITY_TYPES
from leads.models import Event, Lead, Opportunity, Segment, SegmentMembership, Tag
from pages.management.commands.load_demo import buying_power


@pytest.fixture
def fast_hasher(settings):
    # The default PBKDF2 hasher spends most of the test's time on three passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _counts() -> dict[str, int]:
    return {
        "leads": Lead.objects.count(),
        "events": Event.objects.filter(source="demo").count(),
        "segment_events": Event.objects.filter(type="segment.entered").count(),
        "memberships": SegmentMembership.objects.count(),
        "users": get_user_model().objects.count(),
        "tags": Tag.objects.count(),
        "lead_tags": Lead.tags.through.objects.count(),
        "owned": Lead.objects.filter(owner__isnull=False).count(),
    }


@pytest.mark.django_db
def test_load_demo_twice_loads_the_same_data_once(fast_hasher):
    first_out, second_out = StringIO(), StringIO()

    call_command("load_demo", "--no-replay", stdout=first_out)
    first = _counts()
    call_command("load_demo", "--no-replay", stdout=second_out)

    assert _counts() == first
    assert first["leads"] == 300
    assert first["users"] == 3
    assert 3000 <= first["events"] <= 15000
    events = first["events"]
    users = "users admin/marketer/sales (password: leadflow)"
    assert first_out.getvalue() == (
        f"Demo data: 300 leads (300 new), {events} events ({events} new), "
        f"5 segments (5 new), 6 flows (6 new), 2 email templates (2 new), {users}\n"
    )
    assert second_out.getvalue() == (
        f"Demo data: 300 leads (0 new), {events} events (0 new), 5 segments (0 new), "
        f"6 flows (0 new), 2 email templates (0 new), {users}\n"
    )
    segments = {s.name: s.member_count for s in Segment.objects.all()}
    assert sorted(segments) == [
        "Active subscribers",
        "Dead-end: no opens in 60 days",
        "Decision makers at companies of 25+",
        "Hot leads",
        "Visited pricing in last 30 days",
    ]
    # Scores come from the scoring flows; before they run nobody is hot yet.
    assert segments.pop("Hot leads") == 0
    assert all(count > 0 for count in segments.values())
    assert sum(segments.values()) == first["memberships"] == first["segment_events"]


@pytest.mark.django_db
def test_load_demo_users_have_roles_and_the_demo_password(fast_hasher):
    call_command("load_demo", "--no-replay", stdout=StringIO())

    user_model = get_user_model()
    for username in ("admin", "marketer", "sales"):
        user = user_model.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [username]
        assert user.email.endswith("@demo.leadflow.local")
        assert user.first_name
        assert user.last_name
        assert authenticate(username=username, password="leadflow") == user
    admin = user_model.objects.get(username="admin")
    assert (admin.is_staff, admin.is_superuser) == (True, True)
    marketer = user_model.objects.get(username="marketer")
    assert (marketer.is_staff, marketer.is_superuser) == (False, False)
    assert Lead.objects.filter(owner__username="sales").count() == 60
    assert Lead.objects.filter(owner__isnull=False).exclude(owner__username="sales").count() == 0


@pytest.mark.django_db
def test_load_demo_events_are_processed_history(fast_hasher):
    call_command("load_demo", "--no-replay", stdout=StringIO())

    demo = Event.objects.filter(source="demo")
    # Besides the history, only the demo segments' entries were recorded.
    assert demo.count() + Event.objects.filter(type="segment.entered").count() == (
        Event.objects.count()
    )
    assert demo.filter(Q(processed_at__isnull=True) | Q(lead__isnull=True)).count() == 0
    assert demo.filter(type="page", properties__url__icontains="/pricing").exists()
    assert demo.filter(type="track", name="Signed up for trial").exists()
    assert demo.filter(type="track", name="Created project").exists()
    for type_ in ("email.delivered", "email.opened", "email.clicked", "email.replied"):
        assert demo.filter(type=type_).exists(), type_
    assert demo.filter(type="email.clicked", properties__url__startswith="https://").count() == (
        demo.filter(type="email.clicked").count()
    )
    latest = dict(
        Event.objects.filter(type__in=LEAD_ACTIVITY_TYPES)
        .values("lead_id")
        .annotate(at=Max("occurred_at"))
        .values_list("lead_id", "at")
    )
    activity = dict(Lead.objects.values_list("pk", "last_activity_at"))
    assert activity == {pk: latest.get(pk) for pk in activity}


@pytest.mark.django_db
def test_load_demo_keeps_existing_users_and_leads(fast_hasher):
    sales = get_user_model().objects.create_user(username="sales", password="own-secret")
    own = Lead.objects.create(email="anna@customer.example", first_name="Anna", stage="sql")

    call_command("load_demo", "--no-replay", stdout=StringIO())

    sales.refresh_from_db()
    assert sales.check_password("own-secret")
    assert sales.groups.filter(pk=Group.objects.get(name="sales").pk).exists()
    own.refresh_from_db()
    assert (own.first_name, own.stage, own.owner_id, own.last_activity_at) == (
        "Anna",
        "sql",
        None,
        None,
    )
    assert own.events.count() == 0
    assert Lead.objects.count() == 301


@pytest.mark.django_db
def test_load_demo_runs_the_last_month_through_the_scoring_flows(fast_hasher, capsys):
    from flows.models import Enrollment, Flow
    from leads.models import Task
    from scoring.models import LeadScore, ScoreChange

    call_command("load_demo", stdout=StringIO())
    assert sorted(Flow.objects.values_list("name", "status")) == [
        ("App activity scoring", "active"),
        ("B2B fit scoring", "active"),
        ("Email engagement scoring", "active"),
        ("Negative signals", "active"),
        ("Notify sales on hot lead", "active"),
        ("Online behaviour scoring", "active"),
    ]
    assert Enrollment.objects.count() > 100
    reasons = set(ScoreChange.objects.values_list("reason", flat=True))
    assert {
        "Opened an email",
        "Visited the pricing page",
        "Decision maker",
        "Company of 50 to 1,000 people",
        "Did not open the last 3 emails",
    } <= reasons
    # The builder's templates give the points, as they would in a new flow.
    points = dict(ScoreChange.objects.values_list("reason", "delta").distinct())
    assert (points["Opened an email"], points["Clicked an email"]) == (2, 5)
    assert (points["Logged in"], points["Decision maker"]) == (1, 20)
    # Fit is scored when the lead was created, activity when it happened: the
    # ledger's times are the events' times, not the time of loading.
    created = dict(Lead.objects.values_list("pk", "created_at"))
    fit = ScoreChange.objects.filter(category__key="fit")
    assert fit.count() > 100
    assert all(
        change.occurred_at <= created[change.lead_id] + dt.timedelta(hours=1) for change in fit
    )
    assert ScoreChange.objects.filter(
        occurred_at__lt=timezone.now() - dt.timedelta(days=7)
    ).count() > (ScoreChange.objects.count() // 2)
    hot = Lead.objects.filter(grade="hot")
    assert hot.exists()
    # (The cached member count moves after each commit, which a test's transaction
    # never reaches: the stays are the truth.)
    hot_segment = Segment.objects.get(name="Hot leads")
    assert hot_segment.memberships.filter(left_at__isnull=True).count() == hot.count()
    # No customer, lost or disqualified lead is hot; every lead has both axes graded.
    assert not hot.filter(stage__in=["customer", "lost", "disqualified"]).exists()
    assert Lead.objects.filter(fit_grade="A").exists()
    assert Lead.objects.filter(engagement_grade="1").exists()
    # The hot list leads with people a rep would call: open deals and MQLs, each a
    # fit (a job title or a company that scores), no student or freelancer.
    fits = dict(LeadScore.objects.filter(category__key="fit").values_list("lead_id", "score"))
    top = list(hot.exclude(stage__in=["customer", "lost", "disqualified"]).order_by("-score")[:10])
    assert all(
        buying_power(lead.job_title, lead.company_size) == "decision maker" for lead in top[:5]
    )
    assert all(fits[lead.pk] >= 30 for lead in top[:5])
    assert not {lead.job_title for lead in top} & {"Student", "Freelancer", "Software Engineer"}
    # Only what turned hot in the last days made a task: older history asks nobody
    # to call about what is long past.
    recent = Event.objects.filter(
        type="grade.changed", name="hot", occurred_at__gte=timezone.now() - dt.timedelta(days=3)
    )
    # (The demo rep's day of follow-ups is keyed ``demo:``, not made by a flow.)
    rep_day = Task.objects.filter(source_key__startswith="demo:")
    assert rep_day.count() == 6
    assert set(rep_day.values_list("assignee__username", flat=True)) == {"sales"}
    assert not rep_day.filter(lead__stage__in=["customer", "lost", "disqualified"]).exists()
    tasks = Task.objects.exclude(source_key__startswith="demo:")
    assert set(tasks.values_list("lead_id", flat=True)) <= set(
        recent.values_list("lead_id", flat=True)
    )
    assert tasks.count() < hot.count()
    assert not tasks.filter(lead__stage__in=["customer", "disqualified"]).exists()
    assert not tasks.filter(assignee__isnull=True).exists()
    call_command("scoring_verify")
    assert capsys.readouterr().out.strip().endswith("Scores match the ledger.")


@pytest.mark.django_db
def test_load_demo_keeps_the_hot_lead_flow_of_an_older_demo(fast_hasher):
    from flows.lifecycle import flow_create
    from flows.models import Flow

    flow_create(name="Hot lead: notify the owner")

    call_command("load_demo", "--no-replay", stdout=StringIO())

    assert not Flow.objects.filter(name="Notify sales on hot lead").exists()
    assert Flow.objects.count() == 6


@pytest.mark.django_db
def test_load_demo_has_outcomes_that_follow_who_the_lead_is(fast_hasher):
    call_command("load_demo", "--no-replay", stdout=StringIO())

    assert Counter(Lead.objects.values_list("stage", flat=True)) == {
        "lead": 102,
        "subscriber": 91,
        "mql": 15,
        "sql": 5,
        "opportunity": 18,
        "customer": 30,
        "lost": 19,
        "disqualified": 20,
    }
    assert Counter(Lead.objects.values_list("source", flat=True)) == {
        "organic": 133,
        "paid": 104,
        "event": 63,
    }
    fair = Lead.objects.filter(source="event").values_list("source_detail", flat=True)
    assert set(fair) == {"Import: trade fair DMEXCO 2026 (dmexco-2026-scans.csv)"}
    deals = Opportunity.objects.values("status").annotate(value=Sum("value"))
    assert {row["status"]: row["value"] for row in deals} == {
        "won": Decimal(777500),
        "lost": Decimal(608000),
        "open": Decimal(673000),
    }
    assert set(Opportunity.objects.values_list("currency", flat=True)) == {"EUR"}
    assert Counter(
        Opportunity.objects.filter(status="lost").values_list("lost_reason", flat=True)
    ) == {
        "No decision made": 6,
        "Too expensive": 5,
        "Chose a competitor": 4,
        "No budget this year": 3,
        "Missing integration": 1,
    }
    assert not Opportunity.objects.exclude(status="lost").exclude(lost_reason="").exists()
    # Decision makers buy, students, engineers and freelancers do not.
    leads: Counter[str] = Counter()
    customers: Counter[str] = Counter()
    for title, size, stage in Lead.objects.values_list("job_title", "company_size", "stage"):
        power = buying_power(title, size)
        leads[power] += 1
        customers[power] += stage == "customer"
    assert (leads, customers) == (
        {"decision maker": 73, "manager": 67, "individual": 71, "consumer": 89},
        {"decision maker": 17, "manager": 12, "individual": 1, "consumer": 0},
    )
    nobodies = Lead.objects.filter(job_title__in=["Student", "Software Engineer", "Freelancer"])
    assert (nobodies.filter(opportunity_at__isnull=False).count(), nobodies.count()) == (2, 69)
    # Every customer looked at the price first; fewer than half the others did.
    pricing = set(
        Event.objects.filter(type="page", properties__path="/pricing").values_list(
            "lead_id", flat=True
        )
    )
    won = set(Lead.objects.filter(stage="customer").values_list("pk", flat=True))
    assert (len(won & pricing), len(won)) == (30, 30)
    assert len(pricing - won) == 120
    # The negative signals happen too.
    demo = Event.objects.filter(source="demo")
    assert (
        demo.filter(type="email.unsubscribed").count(),
        demo.filter(type="email.bounced").count(),
        demo.filter(type="track", name="Meeting cancelled").count(),
    ) == (16, 3, 5)
    # Each stage reached has its date, in the order of the funnel.
    for lead in Lead.objects.filter(stage__in=["customer", "lost"]):
        closed = lead.customer_at or lead.lost_at
        assert lead.mql_at is not None
        assert lead.sql_at is not None
        assert lead.opportunity_at is not None
        assert closed is not None
        assert lead.mql_at <= lead.sql_at <= lead.opportunity_at <= closed <= timezone.now()
        assert lead.opportunities.get().closed_at == closed
    assert Lead.objects.filter(stage="customer", customer_at__isnull=True).count() == 0
    assert Lead.objects.filter(stage="disqualified", disqualified_at__isnull=True).count() == 0
    assert Lead.objects.filter(stage="opportunity").count() == (
        Opportunity.objects.filter(status="open").count()
    )


@pytest.mark.django_db
def test_load_demo_has_a_sender_the_postal_address_and_two_templates(fast_hasher):
    from emails.models import EmailSettings, EmailTemplate, Sender
    from emails.rendering import email_render

    call_command("load_demo", "--no-replay", stdout=StringIO())

    assert list(Sender.objects.values_list("address", flat=True)) == ["lena@leadflow.example"]
    assert EmailSettings.objects.get().postal_address.startswith("Leadflow GmbH\n")
    templates = {t.name: t for t in EmailTemplate.objects.all()}
    assert sorted(templates) == ["Pricing follow-up", "Willkommen"]
    lead = Lead.objects.exclude(first_name="").order_by("id")[0]
    email = email_render(template=templates["Willkommen"], lead=lead, unsubscribe_url="https://u")
    assert email.subject == f"Willkommen bei Leadflow, {lead.first_name}"
    assert "Friedrichstraße 123" in email.text

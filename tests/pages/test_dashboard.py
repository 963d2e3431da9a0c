"""The dashboard: this week's numbers with trends, the 30-day chart, tasks, hot
leads, active flows and big score changes, per role, and the empty states."""

from __future__ import annotations

import datetime as dt
import html
import json
import re

import pytest
from django.utils import timezone

from flows.models import Enrollment, Flow, FlowVersion
from leads.models import Event, Lead
from pages.selectors.dashboard import Trend, dashboard_daily, dashboard_for
from scoring.models import ScoreChange
from tests.factories import (
    EnrollmentFactory,
    EventFactory,
    FlowVersionFactory,
    LeadFactory,
    ScoreChangeFactory,
    TaskFactory,
)

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def _lead(name: str, owner, created: dt.datetime, grade: str = "cold", score: int = 0) -> Lead:
    lead = LeadFactory.create(
        first_name=name, last_name="Test", owner=owner, grade=grade, score=score
    )
    Lead.objects.filter(pk=lead.pk).update(created_at=created)
    return lead


def _score_event(lead: Lead, at: dt.datetime, old: int, new: int) -> Event:
    return EventFactory.create(
        lead=lead,
        type="score.changed",
        name="engagement",
        properties={"delta": new - old, "from": old, "to": new, "category": "engagement"},
        occurred_at=at,
    )


def _mql(lead: Lead, at: dt.datetime) -> None:
    Lead.objects.filter(pk=lead.pk).update(stage="mql", mql_at=at)


def _grade_event(lead: Lead, at: dt.datetime, old: str, new: str) -> Event:
    return EventFactory.create(
        lead=lead,
        type="grade.changed",
        name=new,
        properties={"from": old, "to": new, "score": 60},
        occurred_at=at,
    )


def _change(lead: Lead, at: dt.datetime, delta: int, reason: str) -> ScoreChange:
    change = ScoreChangeFactory.create(lead=lead, delta=delta, reason=reason)
    ScoreChange.objects.filter(pk=change.pk).update(created_at=at)
    return change


def _enroll(version: FlowVersion, lead: Lead, at: dt.datetime) -> None:
    enrollment = EnrollmentFactory.create(version=version, lead=lead, status="completed")
    Enrollment.objects.filter(pk=enrollment.pk).update(created_at=at)


def _end_of_today(now: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(
        timezone.localdate(now) + DAY, dt.time(0, 0), tzinfo=timezone.get_current_timezone()
    )


@pytest.fixture
def dataset(sales, other_sales, marketer):
    """A known team: six leads (two of the rep's, two unassigned, two of another
    rep's), MQL crossings and hot grades this week and the week before, tasks,
    enrollments and score changes. Times are relative to now."""
    now = timezone.now()
    a = _lead("Ada", sales, now - 2 * DAY, grade="hot", score=60)
    b = _lead("Ben", None, now - 3 * DAY, grade="hot", score=70)
    c = _lead("Cy", other_sales, now - 1 * DAY, grade="hot", score=80)
    d = _lead("Dee", sales, now - 9 * DAY, grade="warm", score=30)
    e = _lead("Eve", None, now - 20 * DAY)
    f = _lead("Fay", other_sales, now - 40 * DAY)

    # MQL threshold is 50: crossings are from < 50 <= to. A lead became an MQL
    # when it first reached the stage (``mql_at``), as a crossing moves it there.
    _score_event(a, now - 2 * DAY, 40, 55)  # crossing, this week
    _mql(a, now - 2 * DAY)
    _score_event(a, now - 1 * DAY - HOUR, 55, 45)  # drops below
    _score_event(a, now - 1 * DAY, 45, 52)  # crosses again: an MQL since the first
    _score_event(c, now - 1 * DAY, 45, 50)  # crossing (exactly the threshold)
    _mql(c, now - 1 * DAY)
    _score_event(b, now - 2 * DAY, 50, 60)  # already above: an MQL long ago
    _mql(b, now - 60 * DAY)
    _score_event(d, now - 9 * DAY, 10, 70)  # crossing, the week before
    _mql(d, now - 9 * DAY)
    _score_event(e, now - 20 * DAY, 0, 50)  # crossing, only on the chart
    _mql(e, now - 20 * DAY)
    _score_event(f, now - 40 * DAY, 0, 90)  # crossing, before the chart
    _mql(f, now - 40 * DAY)
    _grade_event(a, now - 2 * DAY, "warm", "hot")
    _grade_event(b, now - 3 * DAY, "warm", "hot")
    _grade_event(c, now - 10 * DAY, "warm", "hot")
    _grade_event(d, now - 2 * DAY, "cold", "warm")  # not hot

    today_end = _end_of_today(now)
    later_today = now + (today_end - now) / 2
    TaskFactory.create(lead=a, assignee=sales, title="Call Ada", due_at=later_today)
    TaskFactory.create(
        lead=b,
        assignee=sales,
        title="Email Ben",
        due_at=later_today + (today_end - later_today) / 2,
    )
    TaskFactory.create(lead=d, assignee=sales, title="Late 1", due_at=now - DAY)
    TaskFactory.create(lead=d, assignee=sales, title="Late 2", due_at=now - HOUR)
    TaskFactory.create(lead=d, assignee=sales, title="Tomorrow", due_at=today_end + HOUR)
    TaskFactory.create(lead=d, assignee=sales, title="Done", due_at=later_today, status="done")
    TaskFactory.create(lead=c, assignee=other_sales, title="Not yours", due_at=later_today)

    welcome = FlowVersionFactory.create(flow__name="Welcome", flow__status="active")
    nurture = FlowVersionFactory.create(flow__name="Nurture", flow__status="paused")
    for lead in (a, b, c):
        _enroll(welcome, lead, now - 2 * DAY)
    _enroll(nurture, a, now - 1 * DAY)
    _enroll(nurture, b, now - 10 * DAY)
    _enroll(nurture, c, now - 10 * DAY)

    _change(a, now - 1 * DAY, 30, "Visited pricing")
    _change(c, now - 2 * DAY, -40, "Bounced")
    _change(b, now - 3 * DAY, 5, "Opened an email")
    _change(d, now - 9 * DAY, 90, "Too old to show")
    return {"now": now, "leads": {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}}


def _chart(page: str) -> dict:
    match = re.search(r'id="daily-chart" data-chart="([^"]*)"', page)
    assert match is not None
    return json.loads(html.unescape(match.group(1)))


# --- trends -----------------------------------------------------------------------


def test_trend_direction_and_percent():
    assert (Trend(3, 1).direction, Trend(3, 1).percent) == ("up", 200)
    assert (Trend(1, 3).direction, Trend(1, 3).percent) == ("down", 67)
    assert (Trend(2, 2).direction, Trend(2, 2).percent) == ("flat", 0)
    assert (Trend(2, 0).direction, Trend(2, 0).percent) == ("up", None)
    assert (Trend(0, 0).direction, Trend(0, 0).percent) == ("flat", None)


# --- the numbers per role ----------------------------------------------------------


def test_marketer_sees_the_whole_team(dataset, marketer):
    board = dashboard_for(user=marketer, now=dataset["now"])

    assert board.team_wide is True
    assert (board.leads.total, board.leads.mine, board.leads.hot) == (6, 0, 3)
    assert board.leads.new_leads == Trend(3, 1)
    assert board.events.mqls == Trend(2, 1)
    assert board.events.turned_hot == Trend(2, 1)
    assert [lead.first_name for lead in board.hot_leads] == ["Cy", "Ben", "Ada"]
    assert [(f["flow__name"], f["enrollments"]) for f in board.flows] == [
        ("Welcome", 3),
        ("Nurture", 1),
    ]
    assert [(c.lead.first_name, c.delta, c.reason) for c in board.score_changes] == [
        ("Cy", -40, "Bounced"),
        ("Ada", 30, "Visited pricing"),
        ("Ben", 5, "Opened an email"),
    ]
    # The marketer has no tasks of their own.
    assert (board.tasks.due_today, board.tasks.overdue, board.tasks.tasks) == (0, 0, [])


def test_sales_rep_sees_only_their_own_and_unassigned_leads(dataset, sales):
    board = dashboard_for(user=sales, now=dataset["now"])

    assert board.team_wide is False
    # Ada, Ben, Dee and Eve; Ada and Dee are theirs.
    assert (board.leads.total, board.leads.mine, board.leads.hot) == (4, 2, 2)
    assert board.leads.new_leads == Trend(2, 1)
    assert board.events.mqls == Trend(1, 1)
    assert board.events.turned_hot == Trend(2, 0)
    # Their own hot leads only: the unassigned Ben is not theirs.
    assert [lead.first_name for lead in board.hot_leads] == ["Ada"]
    assert board.flows == []
    assert [(c.lead.first_name, c.delta) for c in board.score_changes] == [
        ("Ada", 30),
        ("Ben", 5),
    ]
    assert (board.tasks.due_today, board.tasks.overdue, board.tasks.upcoming) == (2, 2, 1)
    # Overdue first, then the soonest due: today's and the later ones alike.
    assert [t.title for t in board.tasks.tasks] == [
        "Late 1",
        "Late 2",
        "Call Ada",
        "Email Ben",
        "Tomorrow",
    ]


def test_chart_counts_new_leads_and_mqls_per_day(dataset, marketer, sales):
    team = dashboard_for(user=marketer, now=dataset["now"]).daily
    rep = dashboard_for(user=sales, now=dataset["now"]).daily

    today = timezone.localdate(dataset["now"])
    assert len(team.days) == 30
    assert (team.days[0], team.days[-1]) == (today - 29 * DAY, today)

    def by_age(values: list[int]) -> dict[int, int]:
        return {29 - i: n for i, n in enumerate(values) if n}

    # Days ago → count. Fay (40 days ago) is before the chart.
    assert by_age(team.new_leads) == {1: 1, 2: 1, 3: 1, 9: 1, 20: 1}
    # Ada counts on the day she first became an MQL only.
    assert by_age(team.mqls) == {1: 1, 2: 1, 9: 1, 20: 1}
    assert by_age(rep.new_leads) == {2: 1, 3: 1, 9: 1, 20: 1}
    assert by_age(rep.mqls) == {2: 1, 9: 1, 20: 1}


def test_chart_days_are_days_in_the_current_time_zone(marketer):
    # 23:30 UTC on the 10th is already the 11th in Berlin.
    now = dt.datetime(2025, 6, 11, 12, 0, tzinfo=dt.UTC)
    _lead("Late", None, dt.datetime(2025, 6, 10, 23, 30, tzinfo=dt.UTC))

    with timezone.override("Europe/Berlin"):
        daily = dashboard_daily(user=marketer, now=now, days=3)

    assert daily.days == [dt.date(2025, 6, 9), dt.date(2025, 6, 10), dt.date(2025, 6, 11)]
    assert daily.new_leads == [0, 0, 1]


# --- the page ----------------------------------------------------------------------


def test_marketer_page_shows_team_panels(client, dataset, marketer):
    client.force_login(marketer)
    page = client.get("/").content.decode()

    assert "The whole team's numbers" in page
    kpis = re.findall(r'id="kpi-[\w-]+".*?data-count>(\d+)<', page, re.S)
    assert kpis == ["3", "2", "2"]
    assert "↑ 200% on the week before" in page  # new leads 3 vs 1
    assert "↑ 100% on the week before" in page  # MQLs and hot leads 2 vs 1
    assert "3 hot leads now" in page
    flow = Flow.objects.get(name="Welcome")
    assert f'<a href="/flows/{flow.pk}/">Welcome</a>' in page
    lead_c = dataset["leads"]["c"]
    assert f'<a href="/leads/{lead_c.pk}/">Cy Test</a>' in page
    assert "Bounced" in page
    assert 'id="dashboard-backlog"' in page
    chart = _chart(page)
    assert [s["label"] for s in chart["data"]["datasets"]] == ["New leads", "MQLs"]
    assert sum(chart["data"]["datasets"][0]["data"]) == 5
    assert sum(chart["data"]["datasets"][1]["data"]) == 4
    assert len(chart["data"]["labels"]) == 30


def test_sales_page_puts_their_own_first_and_has_no_flows(client, dataset, sales):
    client.force_login(sales)
    page = client.get("/").content.decode()

    assert "Your leads and the unassigned ones" in page
    assert page.index('id="dashboard-mine"') < page.index('id="dashboard-kpis"')
    assert 'id="dashboard-flows"' not in page
    assert 'id="dashboard-backlog"' not in page
    assert "Your hottest leads" in page
    assert "Call Ada" in page
    assert "Email Ben" in page
    assert "Not yours" not in page
    assert 'data-overdue="2"' in page
    assert "2 tasks overdue" in page
    assert "Cy Test" not in page  # another rep's lead, nowhere
    assert "Bounced" not in page
    kpis = re.findall(r'id="kpi-[\w-]+".*?data-count>(\d+)<', page, re.S)
    assert kpis == ["2", "1", "2"]
    assert "same as the week before" in page  # MQLs 1 vs 1
    assert "↑ from 0 the week before" in page  # hot 2 vs 0
    assert "2 owned by you" in page


def test_empty_dashboard_says_what_to_do_next(client, marketer, sales):
    client.force_login(marketer)
    page = client.get("/").content.decode()
    assert "No leads yet." in page
    assert '<a href="/leads/import/">import a CSV file</a>' in page
    assert '<a href="/api/docs/">API documentation</a>' in page
    assert "No lead entered a flow in the last 7 days." in page
    assert "No score changes in the last 7 days." in page
    assert "No hot leads yet." in page
    assert "No open tasks." in page
    assert sum(_chart(page)["data"]["datasets"][0]["data"]) == 0

    client.force_login(sales)
    page = client.get("/").content.decode()
    assert "ask a marketer to import some" in page
    assert "/leads/import/" not in page
    assert 'href="/leads/?grade=hot&amp;owner=none&amp;sort=score"' in page


# Session, user, role, scoring settings, lead counts, event counts, two for the
# chart, one or two for tasks, hot leads, score changes, the bell; and for the
# team, flows and the event backlog.
@pytest.mark.parametrize(("role", "bound"), [("marketer", 14), ("sales", 13)])
def test_dashboard_queries_are_bounded(
    client, dataset, role, bound, request, django_assert_max_num_queries
):
    client.force_login(request.getfixturevalue(role))
    with django_assert_max_num_queries(bound):
        assert client.get("/").status_code == 200

"""The lead profile: header, score breakdown and history, timeline, sections, and
the owner / stage, score and note actions."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import uuid

import pytest
from django.utils import timezone

from flows.models import Flow, FlowVersion, StepRun
from leads.models import Event, Lead, Note, Segment, Stage, Task
from pages.selectors.profile import lead_score_history, lead_timeline
from scoring.models import ScoreCategory, ScoreChange, ScoreSource
from scoring.selectors import lead_score_breakdown
from scoring.services import score_adjust, scoring_settings_update
from tests.factories import (
    EventFactory,
    FlowVersionFactory,
    LeadFactory,
    NoteFactory,
    SegmentFactory,
    SegmentMembershipFactory,
    StepRunFactory,
    TaskFactory,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
NOW = dt.datetime(2025, 6, 11, 12, 0, tzinfo=dt.UTC)


def _flow(name: str = "Nurture") -> tuple[Flow, FlowVersion]:
    graph = {"nodes": [{"id": "n1", "type": "score.adjust", "config": {}}], "edges": []}
    # Flow names are unique: a second "Nurture" gets its number, as the app's own would.
    taken = Flow.objects.filter(name__istartswith=name).count()
    version = FlowVersionFactory.create(
        flow__name=name if not taken else f"{name} ({taken + 1})", graph=graph
    )
    return version.flow, version


def _step(lead: Lead, flow: Flow, version: FlowVersion, node_id: str = "n1") -> StepRun:
    return StepRunFactory.create(
        enrollment__version=version,
        enrollment__lead=lead,
        enrollment__status="waiting",
        node_id=node_id,
    )


def _flow_points(lead: Lead, step: StepRun, delta: int, reason: str) -> ScoreChange:
    change = score_adjust(
        lead=lead,
        delta=delta,
        category=ScoreCategory.objects.get(key="engagement"),
        reason=reason,
        source=ScoreSource.FLOW,
        source_key=f"step:{step.pk}",
    )
    assert change is not None
    return change


def _manual_points(lead: Lead, user, delta: int, reason: str, key: str = "fit") -> ScoreChange:
    change = score_adjust(
        lead=lead,
        delta=delta,
        category=ScoreCategory.objects.get(key=key),
        reason=reason,
        source=ScoreSource.MANUAL,
        source_key=f"manual:{uuid.uuid4().hex}",
        created_by=user,
    )
    assert change is not None
    return change


def _at(change: ScoreChange, when: dt.datetime) -> None:
    ScoreChange.objects.filter(pk=change.pk).update(created_at=when, occurred_at=when)


def _segment(name: str) -> Segment:
    return SegmentFactory.create(name=name, static=True)


def _rich_lead(owner, n: int) -> Lead:
    """A lead with ``n`` rows of every timeline source."""
    lead = LeadFactory.create(owner=owner)
    flow, version = _flow()
    for i in range(n):
        EventFactory.create(lead=lead, type="page", name=f"Page {i}")
        step = _step(lead, flow, version, node_id="n1")
        _flow_points(lead, step, 1, f"Visited {i % 3}")
        _manual_points(lead, owner, 2, "Good call")
        segment = _segment(f"Segment {lead.pk}-{i}")
        SegmentMembershipFactory.create(segment=segment, lead=lead)
        TaskFactory.create(lead=lead, title=f"Call {i}", assignee=owner)
        NoteFactory.create(lead=lead, author=owner, body=f"Note {i}")
    return lead


# --- the page -----------------------------------------------------------------------


def test_profile_shows_header_score_sections_and_timeline(client, admin_user, sales):
    lead = LeadFactory.create(
        first_name="Ada",
        last_name="Lovelace",
        job_title="CTO",
        company_name="Engines Ltd",
        owner=sales,
        stage=Stage.MQL,
        unsubscribed=True,
    )
    flow, version = _flow("Welcome")
    _flow_points(lead, _step(lead, flow, version), 30, "Opened pricing")
    segment = _segment("Hot leads")
    SegmentMembershipFactory.create(segment=segment, lead=lead)
    TaskFactory.create(lead=lead, title="Call Ada", assignee=sales)
    NoteFactory.create(lead=lead, author=sales, body="Wants a demo")
    client.force_login(admin_user)

    response = client.get(f"/leads/{lead.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert '<h1 class="h3 mb-1" id="profile-name">Ada Lovelace' in page
    assert "CTO at Engines Ltd" in page
    assert "<strong data-owner>sales-t</strong>" in page
    assert "<strong data-stage>Marketing qualified</strong>" in page
    assert 'data-grade="warm">Warm</span>' in page
    assert "Unsubscribed: no marketing email" in page
    assert '<span class="badge text-bg-primary" data-total>30</span>' in page
    assert '<li class="list-inline-item" data-category="engagement">' in page
    assert "Hot leads" in page
    assert f'<a href="/flows/{flow.pk}/">Welcome</a>' in page
    assert "At: Adjust lead score" in page
    assert "Call Ada" in page
    assert "Wants a demo" in page
    assert 'id="profile-timeline-list"' in page
    assert 'data-kind="score"' in page
    # Flow steps are in the timeline only when asked for ("Flows" ticked).
    assert 'data-kind="step"' not in page
    flows_box = '<input class="form-check-input" type="checkbox" name="kind" value="flows"'
    assert f'{flows_box} id="timeline-kind-flows">' in page
    assert 'data-kind="segment_in"' in page
    assert 'data-kind="task"' in page
    assert 'data-kind="note"' in page
    # The score.changed event is shown once, as the ledger row.
    assert "score.changed" not in page
    # The manual adjustment form is there for an admin.
    assert f'action="/leads/{lead.pk}/score/"' in page
    # What a rep came for comes first: open tasks, the note box, then the score;
    # the flows are folded away.
    order = ['id="profile-tasks"', 'id="profile-notes"', 'id="profile-score"', 'id="profile-flows"']
    assert [page.index(marker) for marker in order] == sorted(page.index(m) for m in order)
    assert '<details class="card" id="profile-flows">' in page
    with_steps = client.get(
        f"/leads/{lead.pk}/timeline/?filtered=1&kind=flows", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'data-kind="step"' in with_steps


def test_empty_profile_says_what_to_do_next(client, marketer):
    lead = Lead.objects.create(email="new@example.com")
    client.force_login(marketer)

    page = client.get(f"/leads/{lead.pk}/").content.decode()

    assert "Not in any segment." in page
    assert "Not in any flow yet." in page
    assert "No open tasks for this lead. Flows create tasks with a “Notify sales” step." in page
    assert "No notes yet." in page
    assert "No points yet." in page
    assert "Nothing has happened yet." in page


def test_sales_cannot_open_another_reps_lead(client, sales, other_sales):
    lead = LeadFactory.create(owner=other_sales)
    client.force_login(sales)

    assert client.get(f"/leads/{lead.pk}/").status_code == 404
    assert client.get(f"/leads/{lead.pk}/timeline/", **HTMX).status_code == 404
    assert client.post(f"/leads/{lead.pk}/notes/", {"body": "x"}).status_code == 404
    assert client.post(f"/leads/{lead.pk}/update/", {"stage": "sql"}).status_code == 404
    assert (
        client.post(
            f"/leads/{lead.pk}/score/", {"delta": 5, "category": "fit", "reason": "x"}
        ).status_code
        == 404
    )
    assert Note.objects.count() == 0


def test_sales_sees_unassigned_lead(client, sales):
    lead = LeadFactory.create(owner=None)
    client.force_login(sales)

    assert client.get(f"/leads/{lead.pk}/").status_code == 200


def test_profile_query_count_does_not_grow_with_rows(
    client, admin_user, django_assert_max_num_queries
):
    few = _rich_lead(admin_user, 2)
    many = _rich_lead(admin_user, 40)
    client.force_login(admin_user)

    # 27: the lifecycle panel reads the lead's opportunities, the consent card
    # its newest changes.
    with django_assert_max_num_queries(27) as few_queries:
        assert client.get(f"/leads/{few.pk}/").status_code == 200
    with django_assert_max_num_queries(27) as many_queries:
        response = client.get(f"/leads/{many.pk}/")

    assert response.status_code == 200
    assert len(many_queries.captured_queries) == len(few_queries.captured_queries)
    assert response.content.decode().count('class="border-bottom py-2 timeline-entry"') == 30


# --- score breakdown and history ------------------------------------------------------


def test_breakdown_groups_by_reason_with_flow_node_and_user(client, marketer, admin_user):
    lead = LeadFactory.create()
    flow, version = _flow("Nurture")
    _flow_points(lead, _step(lead, flow, version, "n1"), 10, "Visited pricing")
    _flow_points(lead, _step(lead, flow, version, "n1"), 10, "Visited pricing")
    _flow_points(lead, _step(lead, flow, version, "n2"), 5, "Visited pricing")
    _manual_points(lead, admin_user, -3, "Wrong industry")
    _manual_points(lead, admin_user, 7, "Met at a fair")

    breakdown = lead_score_breakdown(lead=lead)

    assert breakdown.score == 29
    assert breakdown.categories == [("fit", "Fit", 4), ("engagement", "Engagement", 25)]
    rows = [
        (r.reason, r.source, r.points, r.changes, r.flow_id, r.node_id, r.user)
        for r in breakdown.reasons
    ]
    assert rows == [
        ("Visited pricing", "flow", 20, 2, flow.pk, "n1", None),
        ("Met at a fair", "manual", 7, 1, None, "", admin_user),
        ("Visited pricing", "flow", 5, 1, flow.pk, "n2", None),
        ("Wrong industry", "manual", -3, 1, None, "", admin_user),
    ]
    assert breakdown.reasons[0].flow_name == "Nurture"
    assert breakdown.reasons[0].node_label == "Adjust lead score"

    client.force_login(marketer)
    page = client.get(f"/leads/{lead.pk}/").content.decode()
    table = page.split('id="score-breakdown"')[1].split("</table>")[0]
    assert table.count(f'<a href="/flows/{flow.pk}/" data-flow>Nurture</a>') == 2
    assert f'<a href="/flows/{flow.pk}/#node-n1" data-node>' in table
    assert f'<a href="/flows/{flow.pk}/#node-n2" data-node>Adjust lead score</a>' in table
    # Steps are named by their labels; their internal ids are not shown.
    assert ">n1<" not in table
    assert ">n2<" not in table
    assert table.count('<a href="mailto:admin-t@example.com" data-user>admin-t</a>') == 2
    assert "2 changes" in table
    assert ">+20</td>" in table
    assert ">-3</td>" in table


def _breakdown_rows(page: str) -> list[tuple[str, str, str]]:
    """(reason, from, points) of each row of the profile's breakdown table, as text."""
    table = page.split('id="score-breakdown"')[1].split("</table>")[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        reason = cells[0].split("<span")[0]
        texts = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in (reason, *cells[1:])]
        rows.append((texts[0], html.unescape(texts[1]), texts[2]))
    return rows


def test_api_and_profile_show_the_same_breakdown(client, marketer, marketer_api, admin_user):
    lead = LeadFactory.create()
    flow, version = _flow("Nurture")
    _flow_points(lead, _step(lead, flow, version, "n1"), 10, "Visited pricing")
    _flow_points(lead, _step(lead, flow, version, "n1"), 10, "Visited pricing")
    _flow_points(lead, _step(lead, flow, version, "n2"), 5, "Visited pricing")
    _manual_points(lead, admin_user, 7, "Met at a fair")
    score_adjust(
        lead=lead,
        delta=-2,
        category=ScoreCategory.objects.get(key="engagement"),
        reason="Quiet for a month",
        source=ScoreSource.DECAY,
        source_key=f"decay:{lead.pk}:2025-06",
    )

    api = marketer_api.get(f"/api/v1/leads/{lead.pk}/score/").json()
    client.force_login(marketer)
    page = client.get(f"/leads/{lead.pk}/").content.decode()

    assert api["reasons"] == [
        {
            "category": "engagement",
            "reason": "Visited pricing",
            "source": "flow",
            "points": 20,
            "changes": 2,
            "capped": 0,
            "summary": "+20 Engagement: Visited pricing",
            "user": None,
            "flow": {"id": flow.pk, "name": "Nurture"},
            "node": {"id": "n1", "type": "score.adjust", "label": "Adjust lead score"},
        },
        {
            "category": "fit",
            "reason": "Met at a fair",
            "source": "manual",
            "points": 7,
            "changes": 1,
            "capped": 0,
            "summary": "+7 Fit: Met at a fair",
            "user": "admin-t",
            "flow": None,
            "node": None,
        },
        {
            "category": "engagement",
            "reason": "Visited pricing",
            "source": "flow",
            "points": 5,
            "changes": 1,
            "capped": 0,
            "summary": "+5 Engagement: Visited pricing",
            "user": None,
            "flow": {"id": flow.pk, "name": "Nurture"},
            "node": {"id": "n2", "type": "score.adjust", "label": "Adjust lead score"},
        },
        {
            "category": "engagement",
            "reason": "Quiet for a month",
            "source": "decay",
            "points": -2,
            "changes": 1,
            "capped": 0,
            "summary": "-2 Engagement: Quiet for a month",
            "user": None,
            "flow": None,
            "node": None,
        },
    ]

    def shown(reason: dict) -> tuple[str, str, str]:
        if reason["flow"]:
            node = reason["node"]
            # The step by its label, never its id.
            who = f"{reason['flow']['name']} \u203a {node['label']}"
        else:
            who = reason["user"] or reason["source"].capitalize()
        return reason["reason"], who, f"{reason['points']:+d}"

    assert _breakdown_rows(page) == [shown(reason) for reason in api["reasons"]]
    assert f"data-total>{api['score']}<" in page
    for key, points in api["categories"].items():
        assert f'data-category="{key}">' in page
        assert re.search(rf'data-category="{key}">[^<]*: <strong>{points}</strong>', page)


def test_profile_shows_the_biggest_reasons_and_loads_the_rest(client, marketer, admin_user):
    lead = LeadFactory.create()
    for n in range(1, 13):
        _manual_points(lead, admin_user, n, f"Reason {n:02d}")
    client.force_login(marketer)

    page = client.get(f"/leads/{lead.pk}/").content.decode()
    table = page.split('id="score-breakdown"')[1].split("</table>")[0]
    more = client.get(f"/leads/{lead.pk}/score/reasons/", **HTMX)
    without_htmx = client.get(f"/leads/{lead.pk}/score/reasons/")
    everything = client.get(f"/leads/{lead.pk}/?reasons=all").content.decode()

    # The ten biggest, then a link to the other two.
    assert re.findall(r">(Reason \d\d) <", table) == [f"Reason {n:02d}" for n in range(12, 2, -1)]
    assert "Show all 12 reasons</a>" in table
    assert f'hx-get="/leads/{lead.pk}/score/reasons/"' in table
    body = more.content.decode()
    assert more.status_code == 200
    assert "<html" not in body
    assert re.findall(r">(Reason \d\d) <", body) == [f"Reason {n:02d}" for n in range(12, 0, -1)]
    assert "data-all-reasons" not in body
    assert without_htmx.status_code == 302
    assert without_htmx["Location"] == f"/leads/{lead.pk}/?reasons=all#score-breakdown"
    table = everything.split('id="score-breakdown"')[1].split("</table>")[0]
    assert len(re.findall(r">(Reason \d\d) <", table)) == 12
    assert "data-all-reasons" not in table


def test_breakdown_limit_keeps_the_count_of_every_reason(admin_user):
    lead = LeadFactory.create()
    for n in range(1, 5):
        _manual_points(lead, admin_user, n, f"Reason {n}")

    top = lead_score_breakdown(lead=lead, limit=2)
    every = lead_score_breakdown(lead=lead)

    assert [r.reason for r in top.reasons] == ["Reason 4", "Reason 3"]
    assert top.reasons_total == 4
    assert [r.reason for r in every.reasons] == ["Reason 4", "Reason 3", "Reason 2", "Reason 1"]
    assert every.reasons_total == 4
    assert lead_score_breakdown(lead=LeadFactory.create(), limit=2).reasons_total == 0


def test_score_history_is_the_cumulative_ledger_per_day(client, admin_user):
    lead = LeadFactory.create()
    today = timezone.localdate()
    noon = dt.time(12, 0)
    zone = timezone.get_current_timezone()

    def on(days_ago: int) -> dt.datetime:
        return dt.datetime.combine(today - dt.timedelta(days=days_ago), noon, tzinfo=zone)

    _at(_manual_points(lead, admin_user, 4, "Old"), on(200))
    _at(_manual_points(lead, admin_user, 10, "A"), on(30))
    _at(_manual_points(lead, admin_user, 5, "B"), on(30))
    _at(_manual_points(lead, admin_user, -2, "C"), on(3))

    history = lead_score_history(lead=lead, days=90)

    assert history == [
        (today - dt.timedelta(days=89), 4),
        (today - dt.timedelta(days=30), 19),
        (today - dt.timedelta(days=3), 17),
        (today, 17),
    ]
    client.force_login(admin_user)
    page = client.get(f"/leads/{lead.pk}/").content.decode()
    chart = re.search(r'data-chart="([^"]*)"', page)
    assert chart is not None
    config = json.loads(html.unescape(chart.group(1)))
    assert config["type"] == "line"
    assert config["data"]["datasets"][0]["data"] == [4, 19, 17, 17]
    assert len(config["data"]["labels"]) == 4


# --- timeline -------------------------------------------------------------------------


def _timeline_lead() -> Lead:
    """35 events a minute apart, then a note and a task at the same moment."""
    lead = LeadFactory.create()
    for i in range(35):
        EventFactory.create(
            lead=lead, type="page", name=f"Page {i}", occurred_at=NOW - dt.timedelta(minutes=35 - i)
        )
    note = NoteFactory.create(lead=lead, body="Latest note")
    Note.objects.filter(pk=note.pk).update(created_at=NOW)
    task = TaskFactory.create(lead=lead, title="Latest task")
    Task.objects.filter(pk=task.pk).update(created_at=NOW)
    return lead


def _describe(entries) -> list[str]:
    return [
        getattr(e.obj, "name", "") or getattr(e.obj, "title", "") or e.obj.body for e in entries
    ]


def test_timeline_merges_sources_newest_first_and_pages():
    lead = _timeline_lead()

    first = lead_timeline(lead=lead)
    second = lead_timeline(lead=lead, cursor=_parse(first.next_cursor))

    # Same time: ordered by kind, descending (task before note).
    assert _describe(first.entries)[:4] == ["Latest task", "Latest note", "Page 34", "Page 33"]
    assert len(first.entries) == 30
    assert _describe(first.entries)[-1] == "Page 7"
    assert _describe(second.entries) == [f"Page {i}" for i in range(6, -1, -1)]
    assert second.next_cursor == ""


def _parse(cursor: str):
    from pages.selectors.profile import timeline_cursor_parse

    parsed = timeline_cursor_parse(cursor)
    assert parsed is not None
    return parsed


def test_timeline_cursor_between_same_time_entries():
    lead = _timeline_lead()

    page = lead_timeline(lead=lead, limit=1)
    rest = lead_timeline(lead=lead, cursor=_parse(page.next_cursor), limit=2)

    assert _describe(page.entries) == ["Latest task"]
    assert page.next_cursor.endswith(f"|task:{page.entries[0].pk}")
    assert _describe(rest.entries) == ["Latest note", "Page 34"]


def test_timeline_load_more_partial(client, marketer):
    lead = _timeline_lead()
    client.force_login(marketer)
    page = client.get(f"/leads/{lead.pk}/").content.decode()
    more_link = re.search(r'hx-get="([^"]*before=[^"]*)"', page)
    assert more_link is not None
    more_url = html.unescape(more_link.group(1))

    more = client.get(more_url, **HTMX)

    body = more.content.decode()
    assert more.status_code == 200
    assert "<html" not in body
    assert 'id="profile-timeline-list"' not in body
    assert body.count('class="border-bottom py-2 timeline-entry"') == 7
    assert "</span> Page 6\n" in body
    assert "</span> Page 0\n" in body
    assert "</span> Page 7\n" not in body
    assert 'id="timeline-more"' not in body


def test_timeline_filters_swap_the_list(client, marketer):
    lead = _timeline_lead()
    client.force_login(marketer)

    notes = client.get(f"/leads/{lead.pk}/timeline/?filtered=1&kind=notes", **HTMX)
    nothing = client.get(f"/leads/{lead.pk}/timeline/?filtered=1", **HTMX)
    events = lead_timeline(lead=lead, filters=["events"])

    body = notes.content.decode()
    assert body.startswith('<ol id="profile-timeline-list"')
    assert body.count('class="border-bottom py-2 timeline-entry"') == 1
    assert 'data-kind="note"' in body
    assert "Nothing of these types." in nothing.content.decode()
    assert {e.kind for e in events.entries} == {"event"}
    assert len(events.entries) == 30


def test_timeline_without_htmx_goes_to_the_profile(client, marketer):
    lead = LeadFactory.create()
    client.force_login(marketer)

    response = client.get(f"/leads/{lead.pk}/timeline/?filtered=1&kind=notes")

    assert response.status_code == 302
    assert response["Location"] == f"/leads/{lead.pk}/?filtered=1&kind=notes"
    page = client.get(response["Location"]).content.decode()
    assert 'value="notes" id="timeline-kind-notes" checked' in page
    assert 'value="events" id="timeline-kind-events">' in page


# --- manual score adjustment --------------------------------------------------------------


def test_admin_adjusts_the_score(client, admin_user):
    lead = LeadFactory.create()
    client.force_login(admin_user)

    response = client.post(
        f"/leads/{lead.pk}/score/",
        {"delta": "15", "category": "fit", "reason": "Perfect fit"},
        **HTMX,
    )

    body = response.content.decode()
    change = ScoreChange.objects.get(lead=lead)
    assert response.status_code == 200
    assert (change.delta, change.category.key, change.reason, change.source) == (
        15,
        "fit",
        "Perfect fit",
        "manual",
    )
    assert change.created_by == admin_user
    assert change.source_key.startswith("manual:")
    lead.refresh_from_db()
    assert lead.score == 15
    assert body.startswith('<section id="profile-score"')
    assert "Score changed by +15 points." in body
    assert '<span class="badge text-bg-primary" data-total>15</span>' in body
    assert 'id="profile-header" class="card" hx-swap-oob="true"' in body


def test_adjustment_without_htmx_redirects_back(client, marketer):
    lead = LeadFactory.create()
    client.force_login(marketer)

    response = client.post(
        f"/leads/{lead.pk}/score/", {"delta": "-4", "category": "engagement", "reason": "Bounce"}
    )

    assert response.status_code == 302
    assert response["Location"] == f"/leads/{lead.pk}/"
    assert ScoreChange.objects.get(lead=lead).delta == -4


def test_missing_reason_is_refused_next_to_the_field(client, admin_user):
    lead = LeadFactory.create()
    client.force_login(admin_user)

    response = client.post(
        f"/leads/{lead.pk}/score/", {"delta": "5", "category": "fit", "reason": ""}, **HTMX
    )
    zero = client.post(
        f"/leads/{lead.pk}/score/", {"delta": "0", "category": "fit", "reason": "x"}, **HTMX
    )

    body = response.content.decode()
    assert response.status_code == 422
    assert 'id="adjust-reason" name="reason" maxlength="255" value="" required>' in body
    assert '<div class="invalid-feedback">This field is required.</div>' in body
    assert 'name="delta" value="5"' in body
    assert zero.status_code == 422
    assert "A change of 0 points changes nothing." in zero.content.decode()
    assert ScoreChange.objects.filter(lead=lead).count() == 0


def test_sales_adjustment_follows_the_setting(client, sales):
    lead = LeadFactory.create(owner=sales)
    client.force_login(sales)
    data = {"delta": "5", "category": "fit", "reason": "Good call"}

    scoring_settings_update(sales_can_adjust=False)
    refused = client.post(f"/leads/{lead.pk}/score/", data, **HTMX)
    page_without = client.get(f"/leads/{lead.pk}/").content.decode()
    scoring_settings_update(sales_can_adjust=True)
    allowed = client.post(f"/leads/{lead.pk}/score/", data, **HTMX)

    assert refused.status_code == 403
    assert f'action="/leads/{lead.pk}/score/"' not in page_without
    assert allowed.status_code == 200
    assert list(ScoreChange.objects.filter(lead=lead).values_list("delta", "created_by")) == [
        (5, sales.pk)
    ]


# --- owner and stage ----------------------------------------------------------------------


def test_change_owner_and_stage_emits_field_changed(client, marketer, sales):
    lead = LeadFactory.create(stage=Stage.LEAD)
    client.force_login(marketer)

    response = client.post(f"/leads/{lead.pk}/update/", {"owner": sales.pk, "stage": "sql"}, **HTMX)

    body = response.content.decode()
    lead.refresh_from_db()
    assert response.status_code == 200
    assert (lead.owner, lead.stage) == (sales, "sql")
    changes = sorted(
        (e.name, e.properties["from"], e.properties["to"])
        for e in Event.objects.filter(lead=lead, type="field.changed")
    )
    assert changes == [("owner", None, sales.pk), ("stage", "lead", "sql")]
    assert body.startswith('<section id="profile-header"')
    assert "<strong data-owner>sales-t</strong>" in body
    assert "<strong data-stage>Sales qualified</strong>" in body
    assert "Saved." in body


def test_change_stage_without_htmx_and_invalid_stage(client, marketer):
    lead = LeadFactory.create(stage=Stage.LEAD)
    client.force_login(marketer)

    ok = client.post(f"/leads/{lead.pk}/update/", {"owner": "", "stage": "customer"})
    bad = client.post(f"/leads/{lead.pk}/update/", {"owner": "", "stage": "nonsense"}, **HTMX)

    assert ok.status_code == 302
    assert ok["Location"] == f"/leads/{lead.pk}/"
    assert bad.status_code == 422
    assert "Select a valid choice." in bad.content.decode()
    lead.refresh_from_db()
    assert lead.stage == "customer"


def test_sales_cannot_hand_a_lead_to_a_colleague(client, sales, other_sales):
    lead = LeadFactory.create(owner=sales)
    client.force_login(sales)

    response = client.post(
        f"/leads/{lead.pk}/update/", {"owner": other_sales.pk, "stage": "sql"}, **HTMX
    )

    assert response.status_code == 422
    assert (
        "Sales reps can only assign a lead to themselves or to no one." in response.content.decode()
    )
    lead.refresh_from_db()
    assert (lead.owner, lead.stage) == (sales, "subscriber")


# --- notes ----------------------------------------------------------------------------------


def test_sales_adds_a_note(client, sales):
    lead = LeadFactory.create(owner=sales)
    client.force_login(sales)

    response = client.post(f"/leads/{lead.pk}/notes/", {"body": "  Called, wants a demo  "}, **HTMX)
    blank = client.post(f"/leads/{lead.pk}/notes/", {"body": "   "}, **HTMX)

    note = Note.objects.get(lead=lead)
    assert (note.author, note.body) == (sales, "Called, wants a demo")
    assert response.status_code == 200
    assert response.content.decode().startswith('<section id="profile-notes"')
    assert "Called, wants a demo" in response.content.decode()
    assert "Note added." in response.content.decode()
    assert blank.status_code == 422
    assert '<div class="invalid-feedback">This field is required.</div>' in (blank.content.decode())
    assert Note.objects.count() == 1


def test_note_without_htmx_redirects_and_errors_show_on_the_page(client, sales):
    lead = LeadFactory.create(owner=sales)
    client.force_login(sales)

    ok = client.post(f"/leads/{lead.pk}/notes/", {"body": "Met"})
    blank = client.post(f"/leads/{lead.pk}/notes/", {"body": ""})

    assert ok.status_code == 302
    assert ok["Location"] == f"/leads/{lead.pk}/"
    assert blank.status_code == 422
    assert "<html" in blank.content.decode()
    assert "This field is required." in blank.content.decode()


def test_a_note_with_a_script_is_escaped(client, sales):
    lead = LeadFactory.create(owner=sales)
    client.force_login(sales)

    client.post(f"/leads/{lead.pk}/notes/", {"body": "<script>alert(1)</script>"}, **HTMX)
    page = client.get(f"/leads/{lead.pk}/").content.decode()

    assert "<script>alert(1)</script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2


def test_profile_shows_capped_decay_and_expiry_rows_as_what_they_are(client, marketer):
    engagement = ScoreCategory.objects.get(key="engagement")
    engagement.cap = 100
    engagement.save()
    fit = ScoreCategory.objects.get(key="fit")
    lead = LeadFactory.create()
    today = timezone.localdate()
    ten_days_ago = timezone.now() - dt.timedelta(days=10)
    rows = [
        (95, engagement, "Signed up", ScoreSource.FLOW, ten_days_ago),
        (10, engagement, "Visited pricing", ScoreSource.FLOW, None),
        (-6, engagement, "no activity for 30 days", ScoreSource.DECAY, None),
        (8, fit, "Decision maker", ScoreSource.FLOW, None),
        (-5, fit, "expired after 90 days", ScoreSource.EXPIRY, None),
    ]
    for index, (delta, category, reason, source, at) in enumerate(rows):
        score_adjust(
            lead=lead,
            delta=delta,
            category=category,
            reason=reason,
            source=source,
            source_key=f"k{index}",
            occurred_at=at,
        )

    summaries = {r.reason: r.summary for r in lead_score_breakdown(lead=lead).reasons}
    assert summaries == {
        "Signed up": "+95 Engagement: Signed up",
        "Visited pricing": "+10 Engagement, capped at 100",
        "no activity for 30 days": "-6 Engagement: no activity for 30 days",
        "Decision maker": "+8 Fit: Decision maker",
        "expired after 90 days": "-5 Fit: expired after 90 days",
    }
    client.force_login(marketer)
    page = client.get(f"/leads/{lead.pk}/").content.decode()
    assert (
        '<div class="small text-warning-emphasis" data-capped>+10 Engagement, capped at 100' in page
    )
    assert 'title="-6 Engagement: no activity for 30 days"' in page
    assert ("expired after 90 days", "Expiry", "-5") in _breakdown_rows(page)
    assert ("no activity for 30 days", "Decay", "-6") in _breakdown_rows(page)
    timeline = [e.obj.summary for e in lead_timeline(lead=lead, filters=["score"]).entries]
    # Newest first by when each change happened: the sign-up was ten days ago.
    assert timeline == [
        "expired after 90 days",
        "Decision maker",
        "no activity for 30 days",
        "+10 Engagement, capped at 100",
        "Signed up",
    ]
    # The chart draws the sign-up on its own day, not today.
    assert lead_score_history(lead=lead, days=30) == [
        (today - dt.timedelta(days=29), 0),
        (ten_days_ago.astimezone(timezone.get_current_timezone()).date(), 95),
        (today, 97),
    ]

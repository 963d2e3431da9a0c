"""The segment pages: list, editor with its condition builder and live count,
the segment's page (members, refresh, static members), deleting, and a lead's
membership history on its profile."""

from __future__ import annotations

import datetime as dt
import html
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.utils import timezone

from leads.models import (
    Lead,
    MembershipSource,
    Segment,
    SegmentMembership,
)
from leads.services.preferences import user_language_set
from segments.services import segment_add_leads, segment_create, segment_recompute
from tests.factories import (
    EventFactory,
    FieldDefinitionFactory,
    LeadFactory,
    SegmentFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


class FormValues(HTMLParser):
    """The values a browser would send for the form with ``form_id``: inputs,
    selects (selected options, else the first), textareas."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.values: list[tuple[str, str]] = []
        self._select: str | None = None
        self._multiple = False
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind == "submit":
                return
            self.values.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select, self._multiple, self._options = a.get("name"), "multiple" in a, []
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.values.append((a["name"], ""))

    def handle_data(self, data):
        if self._textarea and self.values and self.values[-1][0] == self._textarea:
            self.values[-1] = (self._textarea, self.values[-1][1] + data)

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside = False
        if tag == "select" and self._select:
            chosen = [v for v, selected in self._options if selected]
            if not chosen and not self._multiple and self._options:
                chosen = [self._options[0][0]]
            self.values += [(self._select, v) for v in chosen]
            self._select = None
        if tag == "textarea":
            self._textarea = None


def form_values(page: str, form_id: str = "segment-form") -> dict[str, list[str]]:
    parser = FormValues(form_id)
    parser.feed(page)
    out: dict[str, list[str]] = {}
    for name, value in parser.values:
        out.setdefault(name, []).append(html.unescape(value))
    return out


def names_in(page: str) -> set[str]:
    return set(re.findall(r'name="(c(?:-\w+)*)"', page))


def rule(path: str, field: str, op: str, value: str | None = None) -> dict[str, str]:
    data = {f"{path}-kind": "field", f"{path}-field": field, f"{path}-op": op}
    if value is not None:
        data[f"{path}-value"] = value
    return data


@pytest.fixture
def people(db) -> dict[str, Lead]:
    """Five leads with job titles and sizes for exact counts."""
    return {
        "ceo_big": LeadFactory.create(job_title="CEO", company_size=500, first_name="Ada"),
        "ceo_small": LeadFactory.create(job_title="Co-CEO", company_size=8, first_name="Bo"),
        "cto_big": LeadFactory.create(job_title="CTO", company_size=900, first_name="Cy"),
        "cmo": LeadFactory.create(job_title="CMO", company_size=40, first_name="Di"),
        "intern": LeadFactory.create(job_title="Intern", company_size=None, first_name="Ed"),
    }


# --- permissions ---------------------------------------------------------------------------


def _urls(segment: Segment, lead: Lead) -> list[tuple[str, str]]:
    base = f"/segments/{segment.pk}"
    return [
        ("get", "/segments/"),
        ("get", "/segments/new/"),
        ("post", "/segments/new/"),
        ("post", "/segments/preview/"),
        ("get", f"{base}/"),
        ("get", f"{base}/edit/"),
        ("get", f"{base}/status/"),
        ("post", f"{base}/refresh/"),
        ("post", f"{base}/members/add/"),
        ("post", f"{base}/members/remove/"),
        ("get", f"{base}/lead-search/?q=a"),
        ("get", f"{base}/delete/"),
        ("post", f"{base}/delete/"),
    ]


def test_anonymous_users_are_sent_to_log_in(client):
    segment = SegmentFactory.create(name="S", static=True)
    for method, url in _urls(segment, LeadFactory.create()):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_sales_reps_get_403_on_every_segment_page(client, sales):
    segment = SegmentFactory.create(name="S", static=True)
    client.force_login(sales)
    for method, url in _urls(segment, LeadFactory.create()):
        assert getattr(client, method)(url).status_code == 403, url
    assert Segment.objects.filter(pk=segment.pk).exists()
    assert 'href="/segments/"' not in client.get("/").content.decode()


@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_admins_and_marketers_get_the_pages_and_the_nav_link(client, role):
    client.force_login(UserFactory.create(role=role))
    segment = SegmentFactory.create(name="S", static=True)
    for url in ["/segments/", "/segments/new/", f"/segments/{segment.pk}/"]:
        response = client.get(url)
        assert response.status_code == 200, url
    assert 'href="/segments/"' in client.get("/").content.decode()


# --- the list ------------------------------------------------------------------------------


def test_the_list_says_what_to_do_when_empty(client, marketer):
    client.force_login(marketer)
    page = client.get("/segments/").content.decode()
    assert "No segments yet." in page
    assert 'href="/segments/new/"' in page


def test_the_list_shows_kind_count_refresh_and_creator(
    client, marketer, people, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ceos = segment_create(
            name="CEOs",
            conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]},
            created_by=marketer,
        )
    static = segment_create(name="VIPs", kind="static")
    segment_add_leads(segment=static, lead_ids=[people["cmo"].pk])
    for n in range(20):
        segment_create(name=f"More {n:02}", kind="static", created_by=marketer)
    client.force_login(marketer)
    with django_assert_max_num_queries(5):
        response = client.get("/segments/")
    page = response.content.decode()
    body = page.split("<tbody>")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    assert len(rows) == 22
    ceo_row = next(r for r in rows if f'href="/segments/{ceos.pk}/"' in r)
    ceos.refresh_from_db()
    assert "Dynamic" in ceo_row
    assert '<td class="text-end" data-label="Members">2</td>' in ceo_row
    assert ceos.last_refreshed_at is not None
    assert ceos.last_refreshed_at.isoformat()[:19] in ceo_row
    assert "marketer-t" in ceo_row
    vip_row = next(r for r in rows if f'href="/segments/{static.pk}/"' in r)
    assert "Static" in vip_row
    assert '<td class="text-end" data-label="Members">1</td>' in vip_row


# --- the builder ---------------------------------------------------------------------------


def test_a_new_segment_starts_with_one_rule(client, marketer, django_assert_max_num_queries):
    client.force_login(marketer)
    with django_assert_max_num_queries(12):
        page = client.get("/segments/new/").content.decode()
    assert names_in(page) == {"c-match", "c-0-kind", "c-0-field", "c-0-op", "c-0-value"}
    assert 'hx-trigger="load, change, keyup changed delay:500ms"' in page


def test_the_editor_query_count_does_not_grow_with_rules(
    client, marketer, django_assert_max_num_queries
):
    EventFactory.create(type="page", name="Pricing")
    many: list[dict[str, Any]] = [
        {"field": "job_title", "op": "contains", "value": f"x{n}"} for n in range(30)
    ]
    many += [{"activity": "page", "within_days": 7} for _ in range(10)]
    many += [{"any": [{"field": "stage", "op": "is", "value": "lead"}]} for _ in range(10)]
    segment = segment_create(name="Big", conditions={"all": many})
    client.force_login(marketer)
    with django_assert_max_num_queries(13):
        page = client.get(f"/segments/{segment.pk}/edit/").content.decode()
    assert 'value="x29"' in page
    assert '<datalist id="event-names-page"><option value="Pricing"></datalist>' in page


def _builder(client, data: dict[str, str], action: str) -> str:
    response = client.post("/segments/new/", {"name": "", **data, "builder_action": action}, **HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.startswith('<div id="condition-builder"')
    return page


def test_adding_and_removing_rules_and_nested_groups(client, marketer):
    client.force_login(marketer)
    start = {"c-match": "all", **rule("c-0", "job_title", "contains", "CEO")}
    page = _builder(client, start, "add-rule:c")
    assert {"c-1-kind", "c-1-field", "c-1-op", "c-1-value"} <= names_in(page)
    assert 'value="CEO"' in page

    page = _builder(client, start, "add-group:c")
    assert 'name="c-1-kind" value="group"' in page
    assert {"c-1-match", "c-1-0-field", "c-1-0-op"} <= names_in(page)

    nested = {
        **start,
        "c-1-kind": "group",
        "c-1-match": "any",
        **rule("c-1-0", "city", "is", "Berlin"),
    }
    page = _builder(client, nested, "add-group:c-1")
    assert {"c-1-1-kind", "c-1-1-match", "c-1-1-0-field"} <= names_in(page)
    assert 'value="Berlin"' in page

    page = _builder(client, nested, "add-activity:c-1")
    assert 'name="c-1-1-activity"' in page

    # Removing the first rule renumbers the group to c-0, its rule kept.
    page = _builder(client, nested, "remove:c-0")
    assert 'value="CEO"' not in page
    assert 'name="c-0-kind" value="group"' in page
    assert 'value="Berlin"' in page
    assert "c-0-0-value" in names_in(page)

    page = _builder(client, nested, "remove:c-1")
    assert names_in(page) == {"c-match", "c-0-kind", "c-0-field", "c-0-op", "c-0-value"}


def test_without_htmx_a_builder_action_shows_the_whole_page(client, marketer):
    client.force_login(marketer)
    data = {"name": "Draft", "c-match": "all", **rule("c-0", "job_title", "contains", "CEO")}
    response = client.post("/segments/new/", {**data, "builder_action": "add-rule:c"})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'value="Draft"' in page
    assert "c-1-field" in names_in(page)
    assert not Segment.objects.exists()


def _ops(page: str, path: str = "c-0") -> list[str]:
    select = re.search(rf'<select id="{path}-op" name="{path}-op".*?</select>', page, re.S)
    assert select
    return re.findall(r'<option value="([^"]*)"', select.group(0))


@pytest.mark.parametrize(
    ("field", "op", "ops", "value_input"),
    [
        (
            "job_title",
            "contains",
            [
                "is",
                "is_not",
                "contains",
                "not_contains",
                "starts_with",
                "ends_with",
                "in",
                "is_set",
                "is_not_set",
            ],
            '<input name="c-0-value"',
        ),
        (
            "company_size",
            "gte",
            ["eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"],
            '<input type="number" step="any" name="c-0-value"',
        ),
        (
            "score",
            "between",
            ["eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"],
            'name="c-0-value2"',
        ),
        (
            "created_at",
            "before",
            [
                "before",
                "after",
                "on",
                "between",
                "in_last_days",
                "more_than_days_ago",
                "in_next_days",
                "is_set",
                "is_not_set",
            ],
            '<input type="date" name="c-0-value"',
        ),
        (
            "last_activity_at",
            "in_last_days",
            [
                "before",
                "after",
                "on",
                "between",
                "in_last_days",
                "more_than_days_ago",
                "in_next_days",
                "is_set",
                "is_not_set",
            ],
            '<input type="number" min="0" step="1" name="c-0-value"',
        ),
        ("unsubscribed", "is", ["is"], '<option value="true"'),
        (
            "stage",
            "is",
            ["is", "is_not", "in", "is_set", "is_not_set"],
            '<option value="mql">Marketing qualified</option>',
        ),
        (
            "grade",
            "in",
            ["is", "is_not", "in", "is_set", "is_not_set"],
            '<select multiple size="3" name="c-0-values"',
        ),
        ("tags", "has", ["has", "has_not", "has_any", "has_all"], '<option value="vip">vip'),
        (
            "custom.plan",
            "is",
            ["is", "is_not", "in", "is_set", "is_not_set"],
            '<option value="pro">pro</option>',
        ),
        (
            "score.fit",
            "gte",
            ["eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"],
            '<input type="number" step="any" name="c-0-value"',
        ),
    ],
)
def test_operators_and_value_input_follow_the_field_type(
    client, marketer, field, op, ops, value_input
):
    FieldDefinitionFactory.create(key="plan", type="choice", options=["free", "pro"])
    TagFactory.create(name="vip")
    client.force_login(marketer)
    page = _builder(client, {"c-match": "all", **rule("c-0", field, op)}, "refresh")
    assert _ops(page) == ops
    assert f'<option value="{op}" selected>' in page
    assert value_input in page


def test_the_owner_rule_picks_among_users(client, marketer, sales):
    client.force_login(marketer)
    page = _builder(client, {"c-match": "all", **rule("c-0", "owner", "is")}, "refresh")
    select = re.search(r'<select name="c-0-value".*?</select>', page, re.S)
    assert select
    assert re.findall(r'<option value="(\d+)"', select.group(0)) == [
        str(marketer.pk),
        str(sales.pk),
    ]


def test_choosing_another_field_resets_the_operator_and_value(client, marketer):
    client.force_login(marketer)
    page = _builder(
        client, {"c-match": "all", **rule("c-0", "company_size", "contains", "CEO")}, "refresh"
    )
    assert '<option value="eq" selected>' in page
    assert 'value="CEO"' not in page


def test_activity_and_segment_rules_render_their_pickers(client, marketer):
    other = SegmentFactory.create(name="Customers", static=True)
    EventFactory.create(type="track", name="Signed up")
    EventFactory.create(type="track", name="Invited a teammate")
    client.force_login(marketer)
    data = {
        "c-match": "any",
        "c-0-kind": "activity",
        "c-0-activity": "track",
        "c-1-kind": "segment",
        "c-1-segment": str(other.pk),
        "c-1-segop": "not_in",
    }
    page = _builder(client, data, "refresh")
    assert (
        '<datalist id="event-names-track"><option value="Invited a teammate">'
        '<option value="Signed up"></datalist>'
    ) in page
    assert 'list="event-names-track"' in page
    assert f'<option value="{other.pk}" selected>Customers</option>' in page
    assert '<option value="not_in" selected>' in page


# --- live count ----------------------------------------------------------------------------


def test_the_live_count_is_exact_and_lists_a_sample(client, marketer, people):
    client.force_login(marketer)
    data = {"c-match": "all", **rule("c-0", "job_title", "contains", "ceo")}
    response = client.post("/segments/preview/", data, **HTMX)
    page = response.content.decode()
    assert response.status_code == 200
    assert '<span class="display-6" id="segment-count">2</span>' in page
    sample = re.findall(r'<a href="/leads/(\d+)/">', page)
    assert sample == [str(people["ceo_small"].pk), str(people["ceo_big"].pk)]

    nested = {
        "c-match": "any",
        **rule("c-0", "job_title", "is", "CMO"),
        "c-1-kind": "group",
        "c-1-match": "all",
        **rule("c-1-0", "job_title", "contains", "C"),
        **rule("c-1-1", "company_size", "gte", "100"),
    }
    page = client.post("/segments/preview/", nested, **HTMX).content.decode()
    assert '<span class="display-6" id="segment-count">3</span>' in page


def test_the_live_count_marks_problems_next_to_their_rules(client, marketer, people):
    client.force_login(marketer)
    data = {
        "c-match": "all",
        **rule("c-0", "job_title", "contains", "CEO"),
        **rule("c-1", "company_size", "gte", "lots"),
    }
    page = client.post("/segments/preview/", data, **HTMX).content.decode()
    assert "Not counted yet" in page
    assert 'id="segment-count"' not in page
    assert '<div id="errors-c-0" class="lf-errors" hx-swap-oob="true"></div>' in page
    assert (
        '<div id="errors-c-1" class="lf-errors" hx-swap-oob="true">'
        '<div class="invalid-feedback d-block">Enter a whole number.</div></div>'
    ) in page


def test_a_rule_without_its_value_yet_is_left_out_of_the_count_not_marked(client, marketer, people):
    client.force_login(marketer)
    data = {
        "c-match": "all",
        **rule("c-0", "job_title", "contains", "ceo"),
        **rule("c-1", "company_size", "gte", ""),
        "c-2-kind": "group",
        "c-2-match": "any",
        **rule("c-2-0", "job_title", "is", ""),
    }
    page = client.post("/segments/preview/", data, **HTMX).content.decode()
    alone = client.post(
        "/segments/preview/", {"c-match": "all", **rule("c-0", "job_title", "contains", "")}, **HTMX
    ).content.decode()

    # The blank rule in "any" counts as false there, so the group matches no one.
    assert '<span class="display-6" id="segment-count">0</span>' in page
    assert "2 rules without a value yet are left out of the count." in page
    assert "Enter a value." not in page
    assert '<div id="errors-c-1" class="lf-errors" hx-swap-oob="true"></div>' in page
    assert f'<span class="display-6" id="segment-count">{Lead.objects.count()}</span>' in alone
    assert "1 rule without a value yet is left out of the count." in alone
    # Saving still insists on the value.
    saved = client.post("/segments/new/", {"name": "Blank", "kind": "dynamic", **data})
    assert saved.status_code == 422
    assert "Enter a value." in saved.content.decode()


# --- saving --------------------------------------------------------------------------------


NESTED = {
    "name": "Big CEOs or pricing",
    "description": "For the sales team",
    "kind": "dynamic",
    "c-match": "all",
    **rule("c-0", "job_title", "contains", "CEO"),
    "c-1-kind": "group",
    "c-1-match": "any",
    **rule("c-1-0", "company_size", "between", "100"),
    "c-1-0-value2": "1000",
    "c-1-1-kind": "activity",
    "c-1-1-activity": "page",
    "c-1-1-count_op": "gte",
    "c-1-1-count": "2",
    "c-1-1-days": "30",
    "c-1-1-url": "/pricing",
    "save": "1",
}
NESTED_TREE = {
    "all": [
        {"field": "job_title", "op": "contains", "value": "CEO"},
        {
            "any": [
                {"field": "company_size", "op": "between", "value": [100, 1000]},
                {
                    "activity": "page",
                    "count": {"op": "gte", "value": 2},
                    "within_days": 30,
                    "where": {"url": {"op": "contains", "value": "/pricing"}},
                },
            ]
        },
    ]
}


def test_create_and_update_round_trip_a_nested_tree(
    client, marketer, people, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/segments/new/", NESTED)
    segment = Segment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/segments/{segment.pk}/"
    assert segment.conditions == NESTED_TREE
    assert (segment.kind, segment.description, segment.created_by) == (
        "dynamic",
        "For the sales team",
        marketer,
    )
    assert segment.member_count == 1  # the big CEO; the small one has 8 people
    assert list(segment.memberships.values_list("lead", flat=True)) == [people["ceo_big"].pk]

    page = client.get(f"/segments/{segment.pk}/edit/").content.decode()
    values = form_values(page)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/segments/{segment.pk}/edit/", {**values, "save": "1"})
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.conditions == NESTED_TREE

    values["c-0-value"] = ["CTO"]
    values["name"] = ["Big CTOs"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/segments/{segment.pk}/edit/", {**values, "save": "1"})
    segment.refresh_from_db()
    assert segment.name == "Big CTOs"
    assert segment.conditions["all"][0] == {"field": "job_title", "op": "contains", "value": "CTO"}
    assert list(
        segment.memberships.filter(left_at__isnull=True).values_list("lead", flat=True)
    ) == [people["cto_big"].pk]


def test_editing_keeps_what_only_the_api_can_set(
    client, marketer, django_capture_on_commit_callbacks
):
    tree = {
        "all": [
            {
                "activity": "track",
                "name": "Exported",
                "between": ["2026-01-01", "2026-03-31"],
                "where": {"plan": {"op": "is", "value": "pro"}},
                "count": {"op": "gte", "value": 1},
            }
        ]
    }
    segment = segment_create(name="Exporters", conditions=tree)
    client.force_login(marketer)
    values = form_values(client.get(f"/segments/{segment.pk}/edit/").content.decode())
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/segments/{segment.pk}/edit/", {**values, "save": "1"})
    segment.refresh_from_db()
    assert segment.conditions == tree


def test_invalid_input_shows_the_error_at_its_rule_and_keeps_the_rest(client, marketer):
    client.force_login(marketer)
    data = {
        **NESTED,
        "name": "",
        "c-1-0-value": "many",
    }
    response = client.post("/segments/new/", data)
    page = response.content.decode()
    assert response.status_code == 422
    assert not Segment.objects.exists()
    assert "This field is required." in page
    errors = re.search(r'<div id="errors-c-1-0" class="lf-errors">(.*?)</div></div>', page, re.S)
    assert errors
    assert "Enter two whole numbers, the lower one first." in errors.group(1)
    assert '<div id="errors-c-0" class="lf-errors"></div>' in page
    values = form_values(page)
    assert values["c-0-value"] == ["CEO"]
    assert values["c-1-0-value"] == ["many"]
    assert values["c-1-0-value2"] == ["1000"]
    assert values["c-1-1-url"] == ["/pricing"]
    assert values["description"] == ["For the sales team"]


def test_a_german_marketer_sees_condition_errors_in_german(client, marketer):
    # Given a marketer who chose German
    user_language_set(user=marketer, language="de")
    client.force_login(marketer)

    # When they save a date range whose first day is after its last day
    response = client.post(
        "/segments/new/",
        {
            **NESTED,
            **rule("c-1-0", "created_at", "between", "2026-02-01"),
            "c-1-0-value2": "2026-01-01",
        },
    )

    # Then the error next to the rule is German, and nothing is saved
    page = response.content.decode()
    assert response.status_code == 422
    assert not Segment.objects.exists()
    errors = re.search(r'<div id="errors-c-1-0" class="lf-errors">(.*?)</div></div>', page, re.S)
    assert errors
    assert "Der erste Tag liegt nach dem letzten Tag." in errors.group(1)
    assert "The first day is after the last day." not in page


def test_the_api_answers_condition_errors_in_english_for_an_api_key(full_api, marketer):
    # A German user in the team does not change what an API key is told
    user_language_set(user=marketer, language="de")
    tree = {
        "all": [
            {"field": "shoe_size", "op": "gte", "value": 10},
            {"field": "score", "op": "between", "value": [50, 10]},
            {"activity": "page", "within_days": 30, "between": ["2026-01-01", "2026-02-01"]},
        ]
    }

    response = full_api.post(
        "/api/v1/segments/", {"name": "Bad", "conditions": tree}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "conditions.all[0].field": ["There is no field called “shoe_size”."],
        "conditions.all[1].value": ["The first number is larger than the second."],
        "conditions.all[2]": ["Use within_days or between, not both."],
    }
    assert not Segment.objects.exists()


def test_a_dynamic_segment_needs_a_rule_and_a_free_name(client, marketer):
    SegmentFactory.create(name="Taken", static=True)
    client.force_login(marketer)
    response = client.post("/segments/new/", {"name": "Taken", "kind": "dynamic", "save": "1"})
    page = response.content.decode()
    assert response.status_code == 422
    assert "Another segment already has this name." in page
    assert "Add at least one rule: a dynamic segment needs conditions." in page


def test_a_static_segment_is_created_without_conditions(client, marketer):
    client.force_login(marketer)
    response = client.post("/segments/new/", {"name": "VIPs", "kind": "static", "save": "1"})
    segment = Segment.objects.get()
    assert response["Location"] == f"/segments/{segment.pk}/"
    assert (segment.kind, segment.conditions) == ("static", {})
    page = client.post(
        "/segments/new/", {"name": "x", "kind": "static", "builder_action": "refresh"}, **HTMX
    ).content.decode()
    assert "A static segment has no conditions" in page
    assert "c-match" not in page


def test_a_static_segment_is_renamed_without_a_builder(client, marketer):
    segment = segment_create(name="VIPs", kind="static")
    client.force_login(marketer)
    page = client.get(f"/segments/{segment.pk}/edit/").content.decode()
    assert "c-match" not in page
    assert 'name="kind"' not in page
    response = client.post(
        f"/segments/{segment.pk}/edit/", {"name": "Top VIPs", "description": "Hand-picked"}
    )
    assert response["Location"] == f"/segments/{segment.pk}/"
    segment.refresh_from_db()
    assert (segment.name, segment.description, segment.kind, segment.conditions) == (
        "Top VIPs",
        "Hand-picked",
        "static",
        {},
    )


# --- the segment's page --------------------------------------------------------------------


def test_the_page_describes_the_conditions_in_words(client, marketer, people):
    client.force_login(marketer)
    customers = SegmentFactory.create(name="Customers", static=True)
    tree = {
        "all": [
            {"field": "job_title", "op": "contains", "value": "CEO"},
            {"field": "owner", "op": "is", "value": marketer.pk},
            {
                "any": [
                    {
                        "activity": "email.opened",
                        "within_days": 30,
                        "count": {"op": "eq", "value": 0},
                    },
                    {"segment": customers.pk, "op": "not_in"},
                ]
            },
        ]
    }
    segment = segment_create(name="Cold CEOs", conditions=tree)
    page = client.get(f"/segments/{segment.pk}/").content.decode()
    summary = re.search(r'<div class="lf-summary" id="segment-summary">(.*?)</div>', page, re.S)
    assert summary
    text = re.sub(r"<[^>]+>", "|", summary.group(1))
    parts = [p.strip() for p in text.split("|") if p.strip()]
    assert parts == [
        "All of:",
        "Job title contains “CEO”",
        "Owner is marketer-t",
        "Any of:",
        "No Email opened, in the last 30 days",
        "Not in the segment “Customers”",
    ]


def test_members_are_listed_newest_first_a_page_at_a_time(
    client, marketer, django_assert_max_num_queries
):
    segment = SegmentFactory.create(name="VIPs", static=True)
    leads = LeadFactory.create_batch(120)
    start = timezone.now() - dt.timedelta(days=1)
    SegmentMembership.objects.bulk_create(
        [
            SegmentMembership(
                segment=segment,
                lead=lead,
                entered_at=start + dt.timedelta(minutes=n // 2),
                source=MembershipSource.MANUAL,
            )
            for n, lead in enumerate(leads)
        ]
    )
    client.force_login(marketer)
    with django_assert_max_num_queries(6):
        page = client.get(f"/segments/{segment.pk}/").content.decode()
    shown = [
        int(pk) for pk in re.findall(r'<td class="lf-stack-inline"><a href="/leads/(\d+)/">', page)
    ]
    newest_first = [lead.pk for lead in reversed(leads)]
    assert shown == newest_first[:50]
    seen = list(shown)
    for _page in range(5):
        more = re.search(r'hx-get="([^"]+)" hx-target="#member-more"', page)
        if not more:
            break
        with django_assert_max_num_queries(5):
            page = client.get(html.unescape(more.group(1)), **HTMX).content.decode()
        seen += [
            int(pk)
            for pk in re.findall(r'<td class="lf-stack-inline"><a href="/leads/(\d+)/">', page)
        ]
    assert seen == newest_first


def test_static_members_are_added_by_email_and_removed_by_checkbox(client, marketer, people):
    segment = SegmentFactory.create(name="VIPs", static=True)
    client.force_login(marketer)
    emails = f"{people['cmo'].email}, {people['intern'].email.upper()}\nnobody@nowhere.example"
    response = client.post(f"/segments/{segment.pk}/members/add/", {"emails": emails}, **HTMX)
    page = response.content.decode()
    assert response.status_code == 200
    assert "2 leads added. No lead has these emails: nobody@nowhere.example." in page
    assert '<span id="segment-member-count" class="display-6" hx-swap-oob="true">2</span>' in page
    members = set(segment.memberships.filter(left_at__isnull=True).values_list("lead", flat=True))
    assert members == {people["cmo"].pk, people["intern"].pk}

    bad = client.post(f"/segments/{segment.pk}/members/add/", {"emails": "not-an-email"}, **HTMX)
    assert bad.status_code == 422
    assert "Not an email: not-an-email" in bad.content.decode()

    response = client.post(
        f"/segments/{segment.pk}/members/remove/", {"lead": [people["cmo"].pk]}, **HTMX
    )
    assert "1 lead removed." in response.content.decode()
    assert list(
        segment.memberships.filter(left_at__isnull=True).values_list("lead", flat=True)
    ) == [people["intern"].pk]
    segment.refresh_from_db()
    assert segment.member_count == 1
    # A dynamic segment takes no members by hand.
    dynamic = segment_create(name="D", conditions={"all": [{"field": "city", "op": "is_set"}]})
    assert (
        client.post(f"/segments/{dynamic.pk}/members/add/", {"emails": "a@b.c"}).status_code == 404
    )


def test_static_members_are_picked_from_a_search(client, marketer, people):
    segment = SegmentFactory.create(name="VIPs", static=True)
    segment_add_leads(segment=segment, lead_ids=[people["cmo"].pk])
    client.force_login(marketer)
    page = client.get(f"/segments/{segment.pk}/lead-search/?q=acme", **HTMX).content.decode()
    found = re.findall(r'name="lead" value="(\d+)"', page)
    everyone_else = [p.pk for p in people.values() if p != people["cmo"]]
    assert found == [str(pk) for pk in sorted(everyone_else, reverse=True)]
    page = client.get(f"/segments/{segment.pk}/lead-search/?q=nobody", **HTMX).content.decode()
    assert "No lead outside the segment matches." in page

    response = client.post(
        f"/segments/{segment.pk}/members/add/", {"lead": people["cto_big"].pk}, **HTMX
    )
    assert "Cy " in response.content.decode()
    assert " added." in response.content.decode()
    members = set(segment.memberships.filter(left_at__isnull=True).values_list("lead", flat=True))
    assert members == {people["cmo"].pk, people["cto_big"].pk}
    again = client.post(
        f"/segments/{segment.pk}/members/add/", {"lead": people["cto_big"].pk}, **HTMX
    )
    assert "was already a member." in again.content.decode()


def test_refresh_shows_progress_until_the_worker_is_done(
    client, marketer, people, django_capture_on_commit_callbacks
):
    segment = segment_create(
        name="CEOs", conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}
    )
    client.force_login(marketer)
    # Created, not recomputed yet: the page shows the refresh running and polls.
    page = client.get(f"/segments/{segment.pk}/").content.decode()
    assert "Refreshing…" in page
    assert f'hx-get="/segments/{segment.pk}/status/?polling=1" hx-trigger="every 1s"' in page
    poll = client.get(f"/segments/{segment.pk}/status/?polling=1", **HTMX).content.decode()
    assert "Refreshing…" in poll
    assert "segment-members" not in poll

    segment_recompute(segment=segment)
    done = client.get(f"/segments/{segment.pk}/status/?polling=1", **HTMX).content.decode()
    assert "Refreshing…" not in done
    assert "every 1s" not in done
    assert "Refresh now" in done
    assert '<section id="segment-members" class="card card-body" hx-swap-oob="true"' in done
    assert '<span id="segment-member-count" class="display-6" hx-swap-oob="true">2</span>' in done

    # "Refresh now" asks a worker for the recompute (inline here, after commit);
    # the page polls until it is done.
    LeadFactory.create(job_title="CEO")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/segments/{segment.pk}/refresh/", **HTMX)
        assert response.status_code == 200
        assert "Refreshing…" in response.content.decode()
    done = client.get(f"/segments/{segment.pk}/status/?polling=1", **HTMX).content.decode()
    assert "Refresh now" in done
    assert '<span id="segment-member-count" class="display-6" hx-swap-oob="true">3</span>' in done


def test_a_refresh_asked_through_the_api_shows_on_the_page(
    client, marketer, marketer_api, django_capture_on_commit_callbacks
):
    segment = segment_create(
        name="Everyone", conditions={"all": [{"field": "email", "op": "is_set"}]}
    )
    segment_recompute(segment=segment)
    client.force_login(marketer)
    assert "Refresh now" in client.get(f"/segments/{segment.pk}/").content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert marketer_api.post(f"/api/v1/segments/{segment.pk}/refresh/").status_code == 202
    assert "Refreshing…" in client.get(f"/segments/{segment.pk}/").content.decode()
    for callback in callbacks:
        callback()
    assert "Refresh now" in client.get(f"/segments/{segment.pk}/").content.decode()


def test_delete_asks_first_and_refuses_a_segment_others_use(client, marketer):
    used = SegmentFactory.create(name="Customers", static=True)
    user = segment_create(
        name="Not customers", conditions={"all": [{"segment": used.pk, "op": "not_in"}]}
    )
    client.force_login(marketer)
    page = client.get(f"/segments/{used.pk}/delete/").content.decode()
    assert "Delete the segment “Customers”?" in page
    response = client.post(f"/segments/{used.pk}/delete/")
    assert response.status_code == 422
    assert "Used by the segments: Not customers." in response.content.decode()
    response = client.post(f"/segments/{user.pk}/delete/")
    assert response["Location"] == "/segments/"
    assert list(Segment.objects.values_list("name", flat=True)) == ["Customers"]


# --- the lead profile ----------------------------------------------------------------------


def test_the_profile_links_current_segments_and_shows_the_history(client, marketer, sales):
    lead = LeadFactory.create()
    vips = SegmentFactory.create(name="VIPs", static=True)
    former = SegmentFactory.create(name="Trials", static=True)
    segment_add_leads(segment=former, lead_ids=[lead.pk])
    SegmentMembership.objects.filter(segment=former).update(
        entered_at=dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC),
        left_at=dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC),
    )
    segment_add_leads(segment=vips, lead_ids=[lead.pk])
    client.force_login(marketer)
    page = client.get(f"/leads/{lead.pk}/").content.decode()
    assert f'href="/segments/{vips.pk}/">VIPs</a>' in page
    assert f'hx-get="/leads/{lead.pk}/segments/"' in page

    history = client.get(f"/leads/{lead.pk}/segments/", **HTMX).content.decode()
    items = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", i)).strip()
        for i in re.findall(r"<li.*?</li>", history, re.S)
    ]
    assert items[0].startswith("VIPs: entered")
    assert items[0].endswith("still in")
    assert items[1] == "Trials: entered Mon 5 Jan 2026, 09:00, left Sun 1 Feb 2026, 09:00"
    assert client.get(f"/leads/{lead.pk}/segments/").status_code == 302

    # A rep sees the history of their leads, without links to segment pages.
    client.force_login(sales)
    history = client.get(f"/leads/{lead.pk}/segments/", **HTMX).content.decode()
    assert "Trials" in history
    assert "/segments/" not in history
    lead.owner = UserFactory.create(role="sales")
    lead.save()
    assert client.get(f"/leads/{lead.pk}/segments/", **HTMX).status_code == 404


def test_an_activity_rule_just_added_leaves_the_count_alone_until_chosen(client, marketer, people):
    client.force_login(marketer)
    start = {"c-match": "all", **rule("c-0", "job_title", "contains", "CEO")}
    before = client.post("/segments/preview/", start, **HTMX).content.decode()
    builder = _builder(client, start, "add-activity:c")
    added = {
        **start,
        "c-1-kind": "activity",
        "c-1-activity": "",
        "c-1-count_op": "gte",
        "c-1-count": "1",
        "c-1-days": "30",
    }
    waiting = client.post("/segments/preview/", added, **HTMX).content.decode()
    chosen = client.post(
        "/segments/preview/", {**added, "c-1-activity": "page"}, **HTMX
    ).content.decode()

    assert '<option value="" selected>Choose an activity…</option>' in builder
    count = re.compile(r'<span class="display-6" id="segment-count">(\d+)</span>')
    assert count.findall(before) == ["2"]
    assert count.findall(waiting) == ["2"]
    assert "1 rule without a value yet is left out of the count." in waiting
    # Chosen, it counts: none of the CEOs visited a page in the last 30 days.
    assert count.findall(chosen) == ["0"]
    # Saving still insists on the activity.
    saved = client.post("/segments/new/", {"name": "Busy", "kind": "dynamic", **added})
    assert saved.status_code == 422
    assert "Choose an activity." in saved.content.decode()

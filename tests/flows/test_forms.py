"""The builder's node configuration form (``flow-node-form``) and node summaries."""

from __future__ import annotations

import datetime as dt
import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from flows.forms import NodeConfigForm
from flows.lifecycle import flow_create
from flows.models import Flow
from flows.nodes import REGISTRY
from flows.nodes.summaries import node_summary
from flows.selectors import node_summaries
from tests.factories import (
    EventFactory,
    FieldDefinitionFactory,
    LeadFactory,
    ScoreCategoryFactory,
    SegmentFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

EVENT = "leadflow:node-configured"


class FormDocument(HTMLParser):
    """The controls of a rendered form: values, options, datalists, and each error
    message under the name of the control it follows."""

    def __init__(self, html: str):
        super().__init__()
        self.values: dict[str, Any] = {}
        self.types: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self.options: dict[str, list[tuple[str, str]]] = {}
        self.selected: dict[str, str] = {}
        self.datalists: dict[str, list[str]] = {}
        self.errors: dict[str, list[str]] = {}
        self.general: list[str] = []
        self.headings: list[str] = []
        self._control = ""
        self._select = ""
        self._option: dict[str, str] | None = None
        self._datalist = ""
        self._capture: list[str] | None = None
        self._text: list[str] = []
        self._textarea = ""
        self._in_alert = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name"):
            self._input(a)
        elif tag == "select":
            self._select = self._control = a["name"]
            self.classes[a["name"]] = a.get("class", "")
            self.options[a["name"]] = []
        elif tag == "option" and self._select:
            self._option = a
            self._text = []
        elif tag == "option" and self._datalist:
            self.datalists[self._datalist].append(a["value"])
        elif tag == "datalist":
            self._datalist = a["id"]
            self.datalists[self._datalist] = []
        elif tag == "textarea":
            self._textarea = self._control = a["name"]
            self.classes[a["name"]] = a.get("class", "")
            self._text = []
        elif tag == "fieldset" and a.get("data-name"):
            self._control = a["data-name"]
        elif tag == "div" and "invalid-feedback" in a.get("class", ""):
            self._capture = []
        elif tag == "div" and "alert-danger" in a.get("class", ""):
            self._in_alert = True
        elif (tag == "li" and self._in_alert) or tag == "h2":
            self._capture = []

    def _input(self, a: dict[str, str]) -> None:
        name = a["name"]
        self._control = name
        self.types[name] = a.get("type", "text")
        self.classes[name] = a.get("class", "")
        if a.get("type") == "checkbox":
            checked = self.values.setdefault(name, [])
            if "checked" in a:
                checked.append(a["value"])
        else:
            self.values[name] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self._option is not None:
            value = self._option["value"]
            self.options[self._select].append((value, "".join(self._text).strip()))
            if "selected" in self._option:
                self.selected[self._select] = value
            self._option = None
        elif tag == "select":
            self._select = ""
        elif tag == "datalist":
            self._datalist = ""
        elif tag == "textarea" and self._textarea:
            self.values[self._textarea] = "".join(self._text)
            self._textarea = ""
        elif tag in ("div", "li", "h2") and self._capture is not None:
            text = "".join(self._capture).strip()
            if tag == "div":
                self.errors.setdefault(self._control, []).append(text)
            elif tag == "li":
                self.general.append(text)
            else:
                self.headings.append(text)
            self._capture = None
        elif tag == "div" and self._in_alert and self._capture is None:
            self._in_alert = False

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._capture.append(data)
        if self._option is not None or self._textarea:
            self._text.append(data)


@pytest.fixture
def flow() -> Flow:
    return flow_create(name="Nurture")


@pytest.fixture
def editor(marketer) -> Client:
    client = Client()
    client.force_login(marketer)
    return client


def form_url(flow: Flow) -> str:
    return reverse("flow-node-form", args=[flow.pk])


def get_form(client: Client, flow: Flow, node_type: str, config: Any = None, **extra: str):
    params = {"type": node_type, "node": "n1", **extra}
    if config is not None:
        params["config"] = config if isinstance(config, str) else json.dumps(config)
    return client.get(f"{form_url(flow)}?{urlencode(params)}")


def post_form(client: Client, flow: Flow, node_type: str, data: dict[str, Any]):
    return client.post(form_url(flow), {"type": node_type, "node": "n1", **data})


def configured(response) -> dict[str, Any]:
    return json.loads(response.headers["HX-Trigger"])[EVENT]


# --- rendering ------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_every_node_type_renders_with_its_defaults(editor, flow, key):
    node_type = REGISTRY[key]

    response = get_form(editor, flow, key)

    assert response.status_code == 200
    doc = FormDocument(response.content.decode())
    assert doc.headings == [node_type.label]
    assert doc.values["type"] == key
    assert doc.values["node"] == "n1"
    controls = set(doc.values) | set(doc.options)
    for prop, schema in node_type.schema["properties"].items():
        assert any(name == prop or name.startswith(f"{prop}.") for name in controls), prop
        if "default" in schema and schema.get("type") == "boolean":
            assert doc.values[prop] == (["true"] if schema["default"] else [])
        elif "default" in schema and prop in doc.options:
            assert doc.selected[prop] == schema["default"]
        elif "default" in schema:
            # A form field holds text: an integer default shows as its digits.
            assert doc.values[prop] == str(schema["default"])
    assert doc.errors == {}
    assert "HX-Trigger" not in response.headers


def test_form_posts_to_itself_and_swaps_itself(editor, flow):
    html = get_form(editor, flow, "tag.add").content.decode()

    assert f'hx-post="/flows/{flow.pk}/node-form/"' in html
    assert 'hx-target="this"' in html
    assert 'hx-swap="outerHTML"' in html
    # Settings apply as they are typed: no Apply button.
    # (a secret only when it is left: its box empties when the form is shown again)
    assert "hx-trigger=\"submit, change, input[target.type!='password'] delay:500ms\"" in html
    assert "Apply</button>" not in html
    assert "Adds a tag." in html


def test_segment_trigger_offers_every_segment_and_prefills_the_config(editor, flow):
    hot = SegmentFactory.create(name="Hot leads")
    vip = SegmentFactory.create(name="VIP list", static=True)

    response = get_form(editor, flow, "segment.entered", {"segment": vip.pk, "once_per_lead": True})

    doc = FormDocument(response.content.decode())
    assert doc.options["segment"] == [
        ("", "Choose…"),
        (str(hot.pk), "Hot leads"),
        (str(vip.pk), "VIP list"),
    ]
    assert doc.selected["segment"] == str(vip.pk)
    assert doc.values["once_per_lead"] == ["true"]


def test_segment_actions_offer_only_static_segments(editor, flow):
    SegmentFactory.create(name="Hot leads")
    vip = SegmentFactory.create(name="VIP list", static=True)

    doc = FormDocument(get_form(editor, flow, "segment.add").content.decode())

    assert doc.options["segment"] == [("", "Choose…"), (str(vip.pk), "VIP list")]


def test_owner_picker_lists_active_sales_reps(editor, flow):
    ann = UserFactory.create(username="ann", first_name="Ann", last_name="Archer", role="sales")
    bob = UserFactory.create(username="bob", role="sales")
    UserFactory.create(username="gone", first_name="Gone", role="sales", is_active=False)
    UserFactory.create(username="mia", first_name="Mia", role="marketer")

    doc = FormDocument(get_form(editor, flow, "owner.assign", {"user": ann.pk}).content.decode())

    assert doc.options["user"] == [
        ("", "The next sales rep in turn"),
        (str(ann.pk), "Ann Archer"),
        (str(bob.pk), "bob"),
    ]
    assert doc.selected["user"] == str(ann.pk)


def test_score_category_picker_lists_categories(editor, flow):
    ScoreCategoryFactory.create(key="product", label="Product usage")

    adjust = FormDocument(get_form(editor, flow, "score.adjust").content.decode())
    threshold = FormDocument(get_form(editor, flow, "score.threshold").content.decode())

    assert adjust.options["category"] == [
        ("fit", "Fit"),
        ("engagement", "Engagement"),
        ("product", "Product usage"),
    ]
    assert adjust.selected["category"] == "engagement"
    assert threshold.options["category"][0] == ("", "Total score")
    assert threshold.options["direction"] == [
        ("up", "Rises to it or above"),
        ("down", "Drops below it"),
    ]


def test_field_pickers_list_standard_and_custom_fields(editor, flow):
    FieldDefinitionFactory.create(key="plan", type="choice", options=["a", "b"])

    set_doc = FormDocument(get_form(editor, flow, "field.set").content.decode())
    changed_doc = FormDocument(get_form(editor, flow, "field.changed").content.decode())

    assert set_doc.options["field"] == [
        ("", "Choose…"),
        ("city", "City"),
        ("company_name", "Company name"),
        ("company_size", "Company size"),
        ("country", "Country"),
        ("first_name", "First name"),
        ("industry", "Industry"),
        ("job_title", "Job title"),
        ("last_name", "Last name"),
        ("phone", "Phone"),
        ("custom.plan", "Plan"),
    ]
    changed = [value for value, _ in changed_doc.options["field"]]
    assert changed[-3:] == ["unsubscribed", "owner", "plan"]
    assert "email" in changed


def test_event_name_and_page_url_suggestions_come_from_recent_events(editor, flow):
    old = timezone.now() - dt.timedelta(days=120)
    for _ in range(3):
        EventFactory.create(type="track", name="Signed up for trial")
    EventFactory.create(type="track", name="Created project")
    EventFactory.create(type="track", name="Archived long ago", occurred_at=old)
    EventFactory.create(type="form.submitted", name="Demo request")
    for url in ("https://x.example/pricing", "https://x.example/pricing", "https://x.example/"):
        EventFactory.create(type="page", name="", properties={"url": url})
    EventFactory.create(type="page", name="", properties={})

    event_doc = FormDocument(get_form(editor, flow, "app.event").content.decode())
    page_doc = FormDocument(get_form(editor, flow, "page.visited").content.decode())

    assert event_doc.datalists == {
        "nf-n1-event-options": ["Signed up for trial", "Created project"]
    }
    assert page_doc.datalists == {
        "nf-n1-url-value-options": ["https://x.example/pricing", "https://x.example/"]
    }
    assert page_doc.selected["url.op"] == "contains"
    assert page_doc.options["url.op"] == [
        ("is", "is"),
        ("contains", "contains"),
        ("starts_with", "starts with"),
    ]


@pytest.mark.parametrize(
    ("key", "queries"),
    [
        ("app.event", 1),
        ("page.visited", 1),
        ("form.submitted", 1),
        ("tag.added", 1),
        ("segment.add", 1),
        ("owner.assign", 1),
        ("score.adjust", 1),
        ("field.set", 1),
        ("field.changed", 1),
        ("wait.until", 0),
        ("condition", 0),
    ],
)
def test_each_picker_costs_one_query(key, queries, django_assert_num_queries):
    EventFactory.create(type="track", name="Signed up")
    TagFactory.create(name="vip")

    with django_assert_num_queries(queries):
        NodeConfigForm(REGISTRY[key], node_id="n1", config={})


def test_posting_a_field_value_reads_custom_fields_once(django_assert_num_queries):
    FieldDefinitionFactory.create(key="seats", type="number")
    data = QueryDict(mutable=True)
    data.update({"field": "custom.seats", "value": "12"})

    # The picker's options and the value's type share one read; the check reads its own.
    with django_assert_num_queries(2):
        form = NodeConfigForm(REGISTRY["field.set"], node_id="n1", data=data)

    assert form.is_valid()
    assert form.config == {"field": "custom.seats", "value": 12}


def test_enums_show_human_labels(editor, flow):
    doc = FormDocument(get_form(editor, flow, "stage.change").content.decode())

    assert doc.options["stage"] == [
        ("", "Choose…"),
        ("subscriber", "Subscriber"),
        ("lead", "Lead"),
        ("mql", "Marketing qualified"),
        ("sql", "Sales qualified"),
        ("opportunity", "Opportunity"),
        ("customer", "Customer"),
        ("lost", "Lost"),
        ("disqualified", "Disqualified"),
    ]
    assert doc.values["forward_only"] == ["true"]


def test_a_config_naming_a_deleted_record_keeps_it_visible(editor, flow):
    doc = FormDocument(get_form(editor, flow, "segment.left", {"segment": 404}).content.decode())

    assert doc.options["segment"] == [("", "Choose…"), ("404", "404 (not available)")]
    assert doc.selected["segment"] == "404"


def test_bad_config_json_shows_defaults_and_a_general_error(editor, flow):
    response = get_form(editor, flow, "sales.notify", "{not json")

    doc = FormDocument(response.content.decode())
    assert response.status_code == 200
    assert doc.general == ["The node's settings could not be read, so the defaults are shown."]
    assert doc.values["title"] == "Follow up with {lead}"
    assert doc.selected["priority"] == "normal"


def test_readonly_form_has_no_apply_button(editor, flow):
    html = get_form(editor, flow, "tag.add", {"tag": "vip"}, readonly="1").content.decode()

    assert "disabled" in html
    assert "Apply" not in html


# --- posting --------------------------------------------------------------------------


def test_valid_post_sends_the_parsed_config_and_summary(editor, flow):
    response = post_form(
        editor,
        flow,
        "score.adjust",
        {"points": "+10", "category": "fit", "reason": "decision maker"},
    )

    assert response.status_code == 200
    assert configured(response) == {
        "node": "n1",
        "type": "score.adjust",
        "config": {"points": 10, "category": "fit", "reason": "decision maker"},
        "complete": True,
        "summary": "+10 Fit: decision maker",
        "problems": [],
    }
    doc = FormDocument(response.content.decode())
    assert doc.values["points"] == "10"
    assert doc.errors == {}


def test_nested_object_booleans_and_enums_are_typed(editor, flow):
    response = post_form(
        editor,
        flow,
        "sales.notify",
        {
            "title": "Call {lead}",
            "due_in.amount": "2",
            "due_in.unit": "days",
            "priority": "high",
            "slack_webhook": "",
        },
    )

    assert configured(response)["config"] == {
        "title": "Call {lead}",
        "due_in": {"amount": 2, "unit": "days"},
        "priority": "high",
        "email": False,
        "slack": False,
    }
    assert configured(response)["summary"] == "Call {lead}"


def test_an_empty_optional_object_is_left_out(editor, flow):
    response = post_form(
        editor,
        flow,
        "email.activity",
        {"activity": "opened", "campaign": "", "url.op": "contains", "url.value": ""},
    )

    assert configured(response)["config"] == {"activity": "opened", "once_per_lead": False}
    assert configured(response)["summary"] == "Email opened"


def test_property_filters_become_typed_values(editor, flow):
    response = post_form(
        editor,
        flow,
        "app.event",
        {
            "event": "Signed up for trial",
            "where.0.property": "plan",
            "where.0.op": "is",
            "where.0.value": "pro",
            "where.1.property": "seats",
            "where.1.op": "gte",
            "where.1.value": "5",
            "where.2.property": "beta",
            "where.2.op": "is",
            "where.2.value": "true",
            "where.3.property": "code",
            "where.3.op": "is",
            "where.3.value": '"42"',
            "where.4.property": "",
            "where.4.op": "is",
            "where.4.value": "",
            "once_per_lead": "true",
        },
    )

    assert configured(response)["config"] == {
        "event": "Signed up for trial",
        "where": {
            "plan": {"op": "is", "value": "pro"},
            "seats": {"op": "gte", "value": 5},
            "beta": {"op": "is", "value": True},
            "code": {"op": "is", "value": "42"},
        },
        "once_per_lead": True,
    }
    assert configured(response)["summary"] == (
        "App event: Signed up for trial where plan is pro and seats ≥ 5 and beta is true "
        "and code is 42, once per lead"
    )
    doc = FormDocument(response.content.decode())
    # Shown back as saved, with a blank row to add another filter.
    assert doc.values["where.3.value"] == '"42"'
    assert doc.values["where.4.property"] == ""


def test_wait_weekdays_and_window(editor, flow):
    response = editor.post(
        form_url(flow),
        {
            "type": "wait",
            "node": "n1",
            "amount": "2",
            "unit": "days",
            "weekdays": ["4", "0", "1", "2", "3"],
            "between.0": "09:00",
            "between.1": "17:00:00",
        },
    )

    assert configured(response)["config"] == {
        "amount": 2,
        "unit": "days",
        "weekdays": [0, 1, 2, 3, 4],
        "between": ["09:00", "17:00"],
    }
    assert configured(response)["summary"] == "Wait 2 days, then Mon-Fri 09:00-17:00 UTC"


def test_half_a_time_window_is_an_error_on_the_missing_end(editor, flow):
    response = post_form(
        editor, flow, "wait", {"amount": "1", "unit": "hours", "between.0": "09:00"}
    )

    doc = FormDocument(response.content.decode())
    assert doc.errors == {"between.1": ["Enter both times, or neither."]}
    assert configured(response)["complete"] is False
    assert configured(response)["problems"] == ["Until: Enter both times, or neither."]


def test_field_set_value_takes_the_field_type(editor, flow):
    FieldDefinitionFactory.create(key="trial", label="On trial", type="boolean")

    size = post_form(editor, flow, "field.set", {"field": "company_size", "value": "250"})
    phone = post_form(editor, flow, "field.set", {"field": "phone", "value": "0123"})
    trial = post_form(editor, flow, "field.set", {"field": "custom.trial", "value": "yes"})

    assert configured(size)["config"] == {"field": "company_size", "value": 250}
    assert configured(phone)["config"] == {"field": "phone", "value": "0123"}
    assert configured(trial)["config"] == {"field": "custom.trial", "value": True}
    assert configured(trial)["summary"] == "Set On trial to true"


def test_field_changed_from_and_to(editor, flow):
    response = post_form(
        editor, flow, "field.changed", {"field": "stage", "from": "null", "to": "sql"}
    )

    assert configured(response)["config"] == {
        "field": "stage",
        "from": None,
        "to": "sql",
        "once_per_lead": False,
    }
    assert configured(response)["summary"] == "Stage changed from empty to Sales qualified"


def test_condition_tree_as_json(editor, flow):
    tree = {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}

    response = post_form(editor, flow, "condition", {"conditions": json.dumps(tree)})

    assert configured(response)["config"] == {"conditions": tree}
    assert configured(response)["summary"] == "Job title contains “CEO”"


def test_condition_tree_problems_point_into_the_json(editor, flow):
    bad_json = post_form(editor, flow, "condition", {"conditions": '{"all": ['})
    bad_rule = post_form(
        editor,
        flow,
        "condition",
        {"conditions": '{"all": [{"field": "nope", "op": "eq"}]}', "conditions-as-json": "1"},
    )

    assert FormDocument(bad_json.content.decode()).errors == {
        "conditions": ["This is not valid JSON: Expecting value (line 1, column 10)."]
    }
    errors = FormDocument(bad_rule.content.decode()).errors["conditions"]
    assert errors
    assert all(e.startswith("At all[0]") for e in errors), errors
    # Kept as typed, with what is still wrong, so that leaving the step loses nothing.
    assert configured(bad_rule)["complete"] is False
    rule = {"field": "nope", "op": "eq"}
    assert configured(bad_rule)["config"] == {"conditions": {"all": [rule]}}
    assert configured(bad_rule)["problems"] == [f"Conditions: {e}" for e in errors]


def test_wait_until_summarises_the_awaited_trigger(editor, flow):
    hot = SegmentFactory.create(name="Hot leads")

    response = post_form(
        editor,
        flow,
        "wait.until",
        {
            "event.type": "segment.entered",
            "event.config.segment": str(hot.pk),
            "within_days": "3",
        },
    )

    assert configured(response)["config"] == {
        "event": {"type": "segment.entered", "config": {"segment": hot.pk}},
        "within_days": 3,
    }
    assert configured(response)["summary"] == "Until Entered segment: Hot leads, at most 3 days"


def test_wait_until_problems_of_the_trigger_config(editor, flow):
    response = post_form(
        editor,
        flow,
        "wait.until",
        {
            "event.type": "segment.entered",
            "event.config.segment": "999999",
            "within_days": "3",
        },
    )

    assert FormDocument(response.content.decode()).errors == {
        "event.config.segment": ["The segment chosen (999999) was deleted: choose another."]
    }


def test_wait_until_shows_the_awaited_triggers_own_fields(editor, flow):
    hot = SegmentFactory.create(name="Hot leads")
    config = {"event": {"type": "segment.entered", "config": {"segment": hot.pk}}}

    doc = FormDocument(get_form(editor, flow, "wait.until", config).content.decode())
    switched = post_form(
        editor, flow, "wait.until", {"event.type": "email.activity", "within_days": "3"}
    )

    # No JSON: the trigger's own settings, its segment picked from a list.
    assert "event.config" not in doc.values
    assert doc.selected["event.config.segment"] == str(hot.pk)
    assert (str(hot.pk), "Hot leads") in doc.options["event.config.segment"]
    assert "event.config.once_per_lead" not in doc.values
    # Another trigger chosen: its fields, and what it still needs.
    other = FormDocument(switched.content.decode())
    assert other.options["event.config.activity"][0] == ("", "Choose…")
    assert other.errors == {"event.config.activity": ["Choose what the lead did with the email."]}


@pytest.mark.parametrize(
    ("node_type", "data", "errors"),
    [
        (
            "score.adjust",
            {"points": "5", "category": "fit", "reason": ""},
            {"reason": ["Say why the lead gets the points: the reason is shown on its profile."]},
        ),
        (
            "score.adjust",
            {"points": "5000", "category": "fit", "reason": "x"},
            {"points": ["“Points” must be at most 1000."]},
        ),
        (
            "score.adjust",
            {"points": "0", "category": "fit", "reason": "x"},
            {"points": ["“Points” cannot be 0."]},
        ),
        (
            "score.adjust",
            {"points": "ten", "category": "nope", "reason": "x"},
            {"points": ["Enter a whole number."]},
        ),
        (
            "score.adjust",
            {"points": "5", "category": "nope", "reason": "x"},
            {"category": ["The score category “nope” does not exist: choose another."]},
        ),
        (
            "grade.changed",
            {"grade": "purple"},
            {"grade": ["Choose one of these for “Grade”: Cold, Warm, Hot."]},
        ),
        (
            "segment.entered",
            {"segment": "999999"},
            {"segment": ["The segment chosen (999999) was deleted: choose another."]},
        ),
        ("segment.entered", {"segment": ""}, {"segment": ["Choose a segment."]}),
        (
            "page.visited",
            {"url.op": "contains", "url.value": ""},
            {"url.value": ["Give the address, or a part of it."]},
        ),
        (
            "sales.notify",
            {"title": "Call", "due_in.amount": "2", "due_in.unit": ""},
            {"due_in.unit": ["Choose a unit: minutes, hours, days …"]},
        ),
        (
            "field.set",
            {"field": "company_size", "value": "many"},
            {"value": ["Enter a number."]},
        ),
        (
            "app.event",
            {
                "event": "Signed up",
                "where.0.property": "seats",
                "where.0.op": "gt",
                "where.0.value": "x",
            },
            {"where.0.value": ["Enter a number."]},
        ),
        (
            "app.event",
            {
                "event": "Signed up",
                "where.0.property": "plan",
                "where.0.op": "is",
                "where.0.value": "",
            },
            {"where.0.value": ["Give a value."]},
        ),
        (
            "wait",
            {"amount": "1", "unit": "days", "between.0": "18:00", "between.1": "09:00"},
            {"between": ["The window must end after it starts."]},
        ),
    ],
)
def test_invalid_posts_show_errors_next_to_their_fields(editor, flow, node_type, data, errors):
    response = post_form(editor, flow, node_type, data)

    assert response.status_code == 200
    doc = FormDocument(response.content.decode())
    assert doc.errors == errors
    # The canvas keeps what was typed, with the problems, and no summary yet.
    event = configured(response)
    assert (event["complete"], event["summary"]) == (False, "")
    messages = sorted(m for ms in errors.values() for m in ms)
    assert sorted(p.partition(": ")[2] for p in event["problems"]) == messages
    for name in errors:
        if name in doc.classes:
            assert "is-invalid" in doc.classes[name]
    assert "Applied" not in response.content.decode()


def test_a_dynamic_segment_cannot_take_leads_by_hand(editor, flow):
    hot = SegmentFactory.create(name="Hot leads")

    response = post_form(editor, flow, "segment.add", {"segment": str(hot.pk)})

    doc = FormDocument(response.content.decode())
    assert doc.errors == {"segment": ["Only static segments take leads by hand."]}
    assert doc.selected["segment"] == str(hot.pk)


def test_typed_markup_is_shown_as_text(editor, flow):
    typed = '<script>alert("x")</script>'

    invalid = post_form(
        editor, flow, "score.adjust", {"points": "0", "category": "fit", "reason": typed}
    )
    valid = post_form(
        editor, flow, "score.adjust", {"points": "1", "category": "fit", "reason": typed}
    )
    shown = get_form(editor, flow, "tag.add", {"tag": typed})

    for response in (invalid, valid, shown):
        html = response.content.decode()
        assert "<script>" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert configured(valid)["config"]["reason"] == typed


# --- access ---------------------------------------------------------------------------


def test_sales_get_403(sales, flow):
    client = Client()
    client.force_login(sales)

    assert get_form(client, flow, "tag.add").status_code == 403
    assert post_form(client, flow, "tag.add", {"tag": "vip"}).status_code == 403


def test_admin_may_use_it(admin_user, flow):
    client = Client()
    client.force_login(admin_user)

    assert get_form(client, flow, "tag.add").status_code == 200


def test_login_required(flow):
    response = get_form(Client(), flow, "tag.add")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login/")


def test_unknown_node_type_or_flow_is_404(editor, flow):
    assert get_form(editor, flow, "no.such.type").status_code == 404
    assert post_form(editor, flow, "no.such.type", {}).status_code == 404
    missing = Flow(pk=flow.pk + 1000)
    assert get_form(editor, missing, "tag.add").status_code == 404


def test_a_bad_node_id_is_refused(editor, flow):
    response = editor.get(f"{form_url(flow)}?type=tag.add&node=%3Cb%3E")

    assert response.status_code == 400


# --- summaries ------------------------------------------------------------------------


def test_node_summaries_resolve_names_in_few_queries(django_assert_max_num_queries):
    hot = SegmentFactory.create(name="Hot leads")
    vip = SegmentFactory.create(name="VIP list", static=True)
    ann = UserFactory.create(username="ann", first_name="Ann", last_name="Archer", role="sales")
    FieldDefinitionFactory.create(key="plan")
    graph = {
        "nodes": [
            {"id": "t1", "type": "segment.entered", "config": {"segment": hot.pk}},
            {
                "id": "t2",
                "type": "page.visited",
                "config": {"url": {"op": "contains", "value": "/pricing"}},
            },
            {"id": "t3", "type": "app.event", "config": {"event": "Signed up for trial"}},
            {
                "id": "a1",
                "type": "score.adjust",
                "config": {"points": 10, "category": "fit", "reason": "decision maker"},
            },
            {"id": "a2", "type": "owner.assign", "config": {"user": ann.pk}},
            {"id": "a3", "type": "segment.add", "config": {"segment": vip.pk}},
            {"id": "a4", "type": "tag.add", "config": {"tag": "vip"}},
            {"id": "a5", "type": "field.set", "config": {"field": "custom.plan", "value": "pro"}},
            {"id": "w1", "type": "wait", "config": {"amount": 2, "unit": "days"}},
            {
                "id": "w2",
                "type": "wait.until",
                "config": {
                    "event": {"type": "segment.left", "config": {"segment": vip.pk}},
                    "within_days": 1,
                },
            },
            {"id": "x1", "type": "segment.entered", "config": {"segment": 999999}},
            {"id": "x2", "type": "score.adjust", "config": {"points": 10}},
            {"id": "x3", "type": "no.such.type", "config": {}},
            {"id": "e1", "type": "exit", "config": {}},
        ],
        "edges": [],
    }

    with django_assert_max_num_queries(4):
        summaries = node_summaries(graph)

    assert summaries == {
        "t1": "Entered segment: Hot leads",
        "t2": "Visited page containing /pricing",
        "t3": "App event: Signed up for trial",
        "a1": "+10 Fit: decision maker",
        "a2": "Assign to Ann Archer",
        "a3": "Add to VIP list",
        "a4": "Add tag vip",
        "a5": "Set Plan to pro",
        "w1": "Wait 2 days",
        "w2": "Until Left segment: VIP list, at most 1 day",
        "x1": "",
        "x2": "",
        "x3": "",
        "e1": "End of the flow",
    }


@pytest.mark.parametrize(
    ("key", "config", "summary"),
    [
        (
            "email.activity",
            {
                "activity": "clicked",
                "campaign": "Launch",
                "url": {"op": "starts_with", "value": "https://x.example/p"},
            },
            "Email clicked: Launch, link starting with https://x.example/p",
        ),
        ("tag.added", {"tag": "vip", "once_per_lead": True}, "Tag added: vip, once per lead"),
        ("tag.removed", {"tag": "vip"}, "Tag removed: vip"),
        ("lead.created", {}, "Every new lead"),
        ("form.submitted", {}, "Any form submitted"),
        ("form.submitted", {"form": "Demo request"}, "Form submitted: Demo request"),
        ("score.threshold", {"threshold": 50}, "Score reaches 50"),
        (
            "score.threshold",
            {"threshold": 5, "category": "fit", "direction": "down"},
            "Fit score drops below 5",
        ),
        ("grade.changed", {"grade": "hot"}, "Grade became hot"),
        ("field.changed", {"field": "job_title"}, "Job title changed"),
        ("owner.assign", {}, "Assign to the next sales rep"),
        ("tag.remove", {"tag": "vip"}, "Remove tag vip"),
        (
            "stage.change",
            {"stage": "mql", "forward_only": False},
            "Move to stage Marketing qualified, also backwards",
        ),
        ("lead.disqualify", {"reason": "Competitor"}, "Disqualify: Competitor"),
        (
            "webhook.send",
            {"url": "https://hooks.example.com/T0/secret"},
            "POST to hooks.example.com",
        ),
        ("flow.end", {}, "End of the flow"),
        (
            "condition",
            {
                "conditions": {
                    "any": [
                        {"field": "score", "op": "gte", "value": 1},
                        {"field": "score", "op": "lt", "value": -5},
                    ]
                }
            },
            "Score is at least 1 or 1 more",
        ),
        (
            "condition",
            {
                "conditions": {
                    "all": [
                        {"field": "job_title", "op": "contains", "value": "CEO"},
                        {"any": [{"activity": "page", "count": {"op": "gte", "value": 2}}]},
                        {"field": "score", "op": "gte", "value": 1},
                    ]
                }
            },
            "Job title contains “CEO” and 2 more",
        ),
        ("wait", {"amount": 1, "unit": "hours", "weekdays": [5, 6]}, "Wait 1 hour, then Sat, Sun"),
        ("sales.notify", {"title": "Call {lead}"}, "Call {lead}"),
        ("field.set", {"field": "job_title", "value": ""}, "Clear Job title"),
        ("condition", {"conditions": {}}, ""),
        ("wait", {"amount": 0, "unit": "hours"}, ""),
        ("tag.add", {}, ""),
    ],
)
def test_node_summary(key, config, summary):
    assert node_summary(key, config) == summary


# --- the If/else's condition builder ----------------------------------------------------


def test_a_condition_is_edited_in_the_segment_builder(editor, flow):
    tree = {"any": [{"field": "job_title", "op": "contains", "value": "CEO"}]}

    doc = FormDocument(get_form(editor, flow, "condition", {"conditions": tree}).content.decode())

    assert doc.selected["c-match"] == "any"
    assert doc.selected["c-0-field"] == "job_title"
    assert doc.selected["c-0-op"] == "contains"
    assert doc.values["c-0-value"] == "CEO"
    # The JSON is there for the advanced switch, hidden.
    assert json.loads(doc.values["conditions"]) == tree
    assert doc.values["conditions-as-json"] == []


def builder_post(**fields: str) -> dict[str, str]:
    """The node form of an If/else as the browser posts it from the builder."""
    return {"conditions": "", "conditions-shown": "", "c-match": "all", **fields}


def test_the_builder_fields_become_the_condition(editor, flow):
    response = post_form(
        editor,
        flow,
        "condition",
        builder_post(
            **{"c-0-kind": "field", "c-0-field": "job_title", "c-0-op": "contains"},
            **{"c-0-value": "CEO", "c-1-kind": "segment", "c-1-segop": "not_in"},
            **{"c-1-segment": str(SegmentFactory.create(name="Customers").pk)},
        ),
    )

    event = configured(response)
    rules = event["config"]["conditions"]["all"]
    assert rules[0] == {"field": "job_title", "op": "contains", "value": "CEO"}
    assert rules[1]["op"] == "not_in"
    assert event["summary"] == "Job title contains “CEO” and 1 more"


def test_a_builder_edit_answers_with_the_builder_and_the_typed_condition(editor, flow):
    response = post_form(
        editor,
        flow,
        "condition",
        builder_post(
            **{"c-0-kind": "field", "c-0-field": "job_title", "c-0-op": "contains"},
            **{"c-0-value": "CEO", "builder_action": "add-activity:c"},
        ),
    )

    html = response.content.decode()
    assert html.startswith('<div id="condition-builder"')
    assert 'name="c-1-activity"' in html
    # The new activity rule waits for its activity: what was typed is kept, and
    # the step says what is missing instead of counting a rule nobody set.
    event = configured(response)
    assert event["complete"] is False
    assert event["problems"] == ["Conditions: Choose an activity."]
    assert event["config"]["conditions"]["all"][0] == {
        "field": "job_title",
        "op": "contains",
        "value": "CEO",
    }
    assert event["config"]["conditions"]["all"][1]["activity"] == ""


def test_the_live_count_of_a_condition(editor, flow):
    LeadFactory.create(job_title="CEO")
    LeadFactory.create(job_title="CEO and founder")
    LeadFactory.create(job_title="Engineer")
    url = reverse("flow-condition-count", args=[flow.pk])
    rule = {"c-0-kind": "field", "c-0-field": "job_title", "c-0-op": "contains"}

    counted = editor.post(
        url, {"type": "condition", **builder_post(**rule, **{"c-0-value": "CEO"})}
    )
    unfinished = editor.post(url, {"type": "condition", **builder_post(**rule)})

    assert '<span id="condition-count"><strong>2</strong> leads would go through' in (
        counted.content.decode()
    )
    assert 'id="condition-count-pending"' in unfinished.content.decode()


def test_the_live_count_is_for_staff(sales, flow):
    client = Client()
    client.force_login(sales)
    url = reverse("flow-condition-count", args=[flow.pk])
    assert client.post(url, {"type": "condition"}).status_code == 403


def test_the_live_count_of_a_read_only_condition(editor, flow):
    LeadFactory.create(job_title="CEO")
    tree = {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}

    html = get_form(editor, flow, "condition", {"conditions": tree}, readonly="1").content.decode()
    start = html.index('hx-get="') + len('hx-get="')
    url = html[start : html.index('"', start)].replace("&amp;", "&")
    counted = editor.get(url)

    assert '<span id="condition-count"><strong>1</strong> lead would go through' in (
        counted.content.decode()
    )

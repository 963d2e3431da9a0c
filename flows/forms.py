"""The node configuration form of the builder's side panel.

Its fields come from the node type's JSON Schema and pickers; what is posted is
parsed back into a config with the right JSON types and checked by
``config_problems``, the validation publishing uses. Field names are config
paths: ``segment``, nested objects dotted (``url.op``, ``due_in.amount``,
``event.config``), property filters as rows (``where.0.property``,
``where.0.op``, ``where.0.value``), a time window as ``between.0`` and
``between.1``, weekdays as repeated ``weekdays`` values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from django.http import QueryDict
from django.utils.text import capfirst
from django.utils.translation import gettext, gettext_lazy

from core.vocabulary import COUNTABLE_TYPES, EngagementGrade, FitGrade, Grade
from flows import selectors
from flows.graph import config_problems
from flows.nodes import REGISTRY, NodeType
from flows.nodes import base as picks
from flows.nodes.actions import SETTABLE_FIELDS
from flows.nodes.base import SECRET_SET, config_checkable, secret_value_set
from flows.nodes.summaries import config_value
from leads.models import FieldDefinition, Stage, TaskPriority
from leads.selectors import lead_owner_choices
from leads.services.fields import BOOL_WORDS, STANDARD_FIELDS
from leads.services.ingest import json_loads_limited
from segments.conditions.words import ACTIVITY_LABELS, COUNT_LABELS
from segments.forms import (
    NEW_RULE,
    BuilderChoices,
    BuilderNode,
    activity_types_in,
    builder_apply,
    builder_nodes,
    tree_from_form,
)
from segments.names import standard_field_labels
from segments.selectors import event_names

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

Loaded = TypeVar("Loaded")


class _Missing:
    """No value: the key stays out of the config."""


MISSING: Any = _Missing()

SELECT_PICKERS = {
    picks.SEGMENT,
    picks.STATIC_SEGMENT,
    picks.SALES_USER,
    picks.SCORE_CATEGORY,
    picks.EMAIL_TEMPLATE,
    picks.LEAD_FIELD,
    picks.SETTABLE_FIELD,
    picks.TRIGGER,
}
INTEGER_PICKERS = {picks.SEGMENT, picks.STATIC_SEGMENT, picks.SALES_USER, picks.EMAIL_TEMPLATE}
SUGGEST_PICKERS = {picks.EVENT_NAME, picks.PAGE_URL, picks.FORM_NAME, picks.TAG}
WEEKDAY_LABELS = (
    gettext_lazy("Mon"),
    gettext_lazy("Tue"),
    gettext_lazy("Wed"),
    gettext_lazy("Thu"),
    gettext_lazy("Fri"),
    gettext_lazy("Sat"),
    gettext_lazy("Sun"),
)
MAX_ROWS = 50

# Labels and help texts, by "<node type>:<path>", then by path, then by property name.
LABELS: dict[str, StrOrPromise] = {
    "once_per_lead": gettext_lazy("Only once per lead"),
    "segment": gettext_lazy("Segment"),
    "campaign": gettext_lazy("Email name"),
    "email.activity:url": gettext_lazy("Clicked link (clicks only)"),
    "page.visited:url": gettext_lazy("Page URL"),
    "url.op": gettext_lazy("Match"),
    "url.value": gettext_lazy("URL"),
    "app.event:event": gettext_lazy("Event name"),
    "where": gettext_lazy("Where the event's properties"),
    "property": gettext_lazy("Property"),
    "op": gettext_lazy("Comparison"),
    "from": gettext_lazy("From value"),
    "to": gettext_lazy("To value"),
    "form": gettext_lazy("Form name"),
    "category": gettext_lazy("Score category"),
    "title": gettext_lazy("Task title"),
    "priority": gettext_lazy("Priority"),
    "email": gettext_lazy("Email the owner"),
    "slack": gettext_lazy("Post to Slack"),
    "slack_webhook": gettext_lazy("Slack webhook URL (blank: the one in Settings)"),
    "user": gettext_lazy("Owner"),
    "forward_only": gettext_lazy("Forward only"),
    "webhook.send:url": gettext_lazy("URL"),
    "secret": gettext_lazy("Signing secret"),
    "conditions": gettext_lazy("Conditions"),
    "wait:amount": gettext_lazy("Wait for"),
    "weekdays": gettext_lazy("Then only on"),
    "between": gettext_lazy("Then only between (UTC)"),
    "wait.until:event": gettext_lazy("Event to wait for"),
    "event.type": gettext_lazy("Trigger"),
    "event.config": gettext_lazy("Trigger settings"),
    "within_days": gettext_lazy("At most (days)"),
    "activity": gettext_lazy("Activity"),
    "field": gettext_lazy("Field"),
    "value": gettext_lazy("Value"),
    "grade": gettext_lazy("Grade"),
    "grade.changed:fit": gettext_lazy("Fit grade reaches"),
    "grade.changed:engagement": gettext_lazy("Engagement grade reaches"),
    "reason": gettext_lazy("Reason"),
    "due_in": gettext_lazy("Due in"),
    "amount": gettext_lazy("Amount"),
    "unit": gettext_lazy("Unit"),
    "points": gettext_lazy("Points"),
    "direction": gettext_lazy("Direction"),
    "threshold": gettext_lazy("Threshold"),
    "stage": gettext_lazy("Stage"),
    "tag": gettext_lazy("Tag"),
}
HELP: dict[str, StrOrPromise] = {
    "once_per_lead": gettext_lazy("Let each lead through this trigger only once, ever."),
    "campaign": gettext_lazy("Only for this email (its name in your email tool); blank for any."),
    "form": gettext_lazy("Blank for any form."),
    "grade.changed:grade": gettext_lazy("Blank for any grade."),
    "grade.changed:fit": gettext_lazy(
        "Blank for any. Starts when the fit grade becomes this one or better (A is best)."
    ),
    "grade.changed:engagement": gettext_lazy(
        "Blank for any. Starts when the engagement grade becomes this one or better (1 is best)."
    ),
    "score.threshold:category": gettext_lazy("Blank for the total score."),
    "score.adjust:points": gettext_lazy("Negative to take points away."),
    "from": gettext_lazy("Blank for any value. Typed as the field is; null means no value."),
    "to": gettext_lazy("Blank for any value. Typed as the field is; null means no value."),
    "value": gettext_lazy(
        "Typed as the field is: a number field takes a number, a yes/no field true or false."
    ),
    "url.value": gettext_lazy("The address or a part of it, as chosen under Match."),
    "where": gettext_lazy(
        "Optional. For “is”, numbers and true/false are read as such; put text "
        'in double quotes ("42") to keep it text. Apply to get another row.'
    ),
    "title": gettext_lazy("{lead} is replaced by the lead's name."),
    "user": gettext_lazy(
        "Blank: the lead's owner stays, or the sales rep in turn (fewest open tasks)."
    ),
    "secret": gettext_lazy("Signs each request with HMAC-SHA256 (X-Leadflow-Signature)."),
    "weekdays": gettext_lazy("Optional: after the wait, go on only on these days (UTC)."),
    "between": gettext_lazy("Optional: after the wait, go on only within these hours (UTC)."),
    "conditions": gettext_lazy(
        'A condition tree as JSON, like a segment\'s: {"all": [...]} or '
        '{"any": [...]} of field, activity and segment rules.'
    ),
    "event.config": gettext_lazy(
        "The trigger's settings as JSON, as that trigger's own form would "
        'set them, e.g. {"activity": "opened"}.'
    ),
}
BLANK_LABELS: dict[str, StrOrPromise] = {
    "user": gettext_lazy("The next sales rep in turn"),
    "score.threshold:category": gettext_lazy("Total score"),
}
ENUM_LABELS: dict[str, StrOrPromise] = {
    **dict(Stage.choices),
    **dict(TaskPriority.choices),
    **dict(Grade.choices),
    **dict(FitGrade.choices),
    **dict(EngagementGrade.choices),
    "is": gettext_lazy("is"),
    "contains": gettext_lazy("contains"),
    "starts_with": gettext_lazy("starts with"),
    "gt": gettext_lazy("greater than"),
    "gte": gettext_lazy("at least"),
    "lt": gettext_lazy("less than"),
    "lte": gettext_lazy("at most"),
    "up": gettext_lazy("Rises to it or above"),
    "down": gettext_lazy("Drops below it"),
    "delivered": gettext_lazy("Delivered"),
    "opened": gettext_lazy("Opened"),
    "clicked": gettext_lazy("Clicked"),
    "replied": gettext_lazy("Replied"),
    "bounced": gettext_lazy("Bounced"),
    "unsubscribed": gettext_lazy("Unsubscribed"),
    "complained": gettext_lazy("Complained"),
    "seconds": gettext_lazy("Seconds"),
    "minutes": gettext_lazy("Minutes"),
    "hours": gettext_lazy("Hours"),
    "days": gettext_lazy("Days"),
    "weeks": gettext_lazy("Weeks"),
}
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
INTEGER = re.compile(r"[+-]?\d+")
NUMERIC_OPS = {"gt", "gte", "lt", "lte"}


@dataclass
class ConfigField:
    """One input of the form (or a group of them), with what it shows and its errors.

    ``widget``: text, number, checkbox, select, checkboxes, times, json, group
    (a nested object), rows (property filters) or scalar (text read as a string,
    number or boolean: by the node's lead field, or by the row's comparison).
    """

    name: str
    label: str
    widget: str
    html_id: str
    schema: dict[str, Any] = field(default_factory=dict)
    picker: str = ""
    required: bool = False
    html_required: bool = False
    help: str = ""
    input_type: str = "text"
    value: Any = ""
    choices: list[tuple[str, str]] = field(default_factory=list)
    groups: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    datalist: list[str] = field(default_factory=list)
    children: list[ConfigField] = field(default_factory=list)
    rows: list[list[ConfigField]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    in_row: bool = False
    # A write-only setting: whether one is stored, and whether the editor asked
    # to clear it. Its input never carries the value.
    secret_set: bool = False
    secret_clear: bool = False
    # A condition tree (widget "conditions"): the tree, its problems by tree
    # path, and whether it is edited as JSON rather than in the builder.
    tree: Any = None
    tree_errors: dict[str, list[str]] = field(default_factory=dict)
    json_mode: bool = False
    builder: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.name.rpartition(".")[2]

    @property
    def datalist_id(self) -> str:
        return f"{self.html_id}-options"

    def option_values(self) -> set[str]:
        values = {value for value, _ in self.choices}
        for _, options in self.groups:
            values.update(value for value, _ in options)
        return values


class NodeConfigForm:
    """The configuration form of one node: shown from a config (GET) or bound to
    posted data, then ``is_valid()`` and ``config``."""

    def __init__(
        self,
        node_type: NodeType,
        *,
        node_id: str,
        config: Any = None,
        data: QueryDict | None = None,
    ):
        self.node_type = node_type
        self.node_id = node_id
        self.prefix = f"nf-{node_id}"
        self.general: list[str] = []
        self.config: dict[str, Any] = {}
        self._loaded: dict[str, Any] = {}
        self._parse_failed: set[str] = set()
        # For each rows field: filtered property name -> row index.
        self._row_of: dict[str, dict[str, int]] = {}
        # A wait-until's awaited trigger: its own settings' fields, in place of JSON.
        self._nested = self._nested_trigger(config, data)
        schema = node_type.schema
        self.fields = self._build_fields(schema, "", set(schema.get("required", [])), True)
        self.bound = data is not None
        if data is not None:
            self._bind_data(self.fields, data)
            self.config = self._parse_into(self.fields, {})
            self._validate()
        else:
            self._bind_config(self.fields, config if isinstance(config, dict) else {})

    def _nested_trigger(self, config: Any, data: QueryDict | None) -> tuple[str, NodeType] | None:
        """(path, trigger type) of the trigger settings nested in this node's
        settings (``event.config`` beside ``event.type``), when one is chosen."""
        for path, picker in self.node_type.pickers.items():
            if picker != picks.TRIGGER:
                continue
            parent = path.rpartition(".")[0]
            key: Any = (
                data.get(path, "")
                if data is not None
                else config_value(config, path)
                if isinstance(config, dict)
                else None
            )
            trigger = REGISTRY.get(key) if isinstance(key, str) else None
            if trigger is not None and trigger.kind == "trigger":
                return (f"{parent}.config" if parent else "config"), trigger
        return None

    def is_valid(self) -> bool:
        return self.bound and not self.general and not self.problems()

    def problems(self) -> list[str]:
        """Every problem of the posted settings, in the form's order, each with
        the label of its field ("Points: This is required.")."""
        found = list(self.general)
        for f in self._all_fields_in_order():
            found.extend(f"{f.label}: {message}" for message in f.errors)
            for messages in f.tree_errors.values():
                found.extend(f"{f.label}: {message}" for message in messages)
        return found

    def tree_field(self) -> ConfigField | None:
        """The form's condition tree, if it has one."""
        return next((f for f in self.fields if f.widget == "conditions"), None)

    def _all_fields_in_order(self) -> list[ConfigField]:
        found: list[ConfigField] = []

        def walk(fields: list[ConfigField]) -> None:
            for f in fields:
                found.append(f)
                walk(f.children)
                for row in f.rows:
                    walk(row)

        walk(self.fields)
        return found

    # --- building -------------------------------------------------------------------

    def _build_fields(
        self, schema: dict[str, Any], prefix: str, required: set[str], parent_required: bool
    ) -> list[ConfigField]:
        return [
            self._build_field(prop, f"{prefix}{key}", key in required, parent_required)
            for key, prop in schema.get("properties", {}).items()
        ]

    def _text(self, table: dict[str, StrOrPromise], path: str, default: str = "") -> str:
        key = path.rpartition(".")[2]
        for candidate in (f"{self.node_type.key}:{path}", path, key):
            if candidate in table:
                return str(table[candidate])
        return default

    def _build_field(
        self,
        prop: dict[str, Any],
        path: str,
        required: bool,
        parent_required: bool,
        *,
        in_row: bool = False,
    ) -> ConfigField:
        picker = "" if in_row else self._picker_at(path)
        key = path.rpartition(".")[2]
        f = ConfigField(
            name=path,
            label=prop.get("title") or self._text(LABELS, path, capfirst(key.replace("_", " "))),
            widget="text",
            html_id=f"{self.prefix}-{path.replace('.', '-')}",
            schema=prop,
            picker=picker,
            required=required,
            html_required=required and parent_required and not in_row,
            help="" if in_row else self._text(HELP, path, prop.get("description", "")),
            in_row=in_row,
        )
        if not self._nested_fields(f) and not self._picker_widget(f):
            self._schema_widget(f)
        if picker == picks.CONDITION_TREE:
            f.widget = "conditions"
        if not in_row and path in self.node_type.secrets:
            f.widget = "secret"
            f.input_type = "password"
            f.attrs.pop("list", None)
        if f.widget not in ("text", "number", "select", "json"):
            f.html_required = False
        return f

    def _picker_at(self, path: str) -> str:
        if path in self.node_type.pickers:
            return self.node_type.pickers[path]
        if self._nested is not None and path.startswith(f"{self._nested[0]}."):
            return self._nested[1].pickers.get(path[len(self._nested[0]) + 1 :], "")
        return ""

    def _nested_fields(self, f: ConfigField) -> bool:
        """Give the nested trigger's settings their own fields; False if none is chosen."""
        if self._nested is None or f.name != self._nested[0]:
            return False
        trigger = self._nested[1]
        schema = {
            **trigger.schema,
            # Once per lead is the trigger's own business, not the wait's.
            "properties": {
                key: spec
                for key, spec in trigger.schema.get("properties", {}).items()
                if key != "once_per_lead"
            },
        }
        f.widget = "group"
        f.label = gettext("%(trigger)s: settings") % {"trigger": trigger.label}
        f.children = self._build_fields(
            schema, f"{f.name}.", set(schema.get("required", [])), f.required
        )
        return True

    def _picker_widget(self, f: ConfigField) -> bool:
        """Give the field the widget its picker asks for; False if it has none."""
        picker = f.picker
        if picker in SELECT_PICKERS:
            f.widget = "select"
            self._picker_options(f)
        elif picker in SUGGEST_PICKERS:
            f.datalist = self._suggestions(picker)
            self._text_attrs(f)
        elif picker == picks.WEEKDAYS:
            f.widget = "checkboxes"
            f.choices = [(str(day), str(label)) for day, label in enumerate(WEEKDAY_LABELS)]
        elif picker == picks.TIME_WINDOW:
            f.widget = "times"
            f.children = [
                ConfigField(
                    name=f"{f.name}.{index}",
                    label=label,
                    widget="text",
                    input_type="time",
                    html_id=f"{f.html_id}-{index}",
                    schema=f.schema.get("items", {}),
                )
                for index, label in enumerate((gettext("From"), gettext("Until")))
            ]
        else:
            return False
        return True

    def _schema_widget(self, f: ConfigField) -> None:
        """Give a field without a picker the widget its JSON schema calls for."""
        prop = f.schema
        kind = prop.get("type")
        if "enum" in prop:
            f.widget = "select"
            options = [
                (str(v), str(ENUM_LABELS.get(str(v), capfirst(str(v).replace("_", " ")))))
                for v in prop["enum"]
            ]
            if not f.in_row and "default" not in prop:
                f.choices.append(("", gettext("Choose…") if f.required else "—"))
            f.choices.extend(options)
        elif kind == "boolean":
            f.widget = "checkbox"
        elif kind in ("integer", "number"):
            self._number_attrs(f, integer=kind == "integer")
        elif kind == "string":
            self._text_attrs(f)
        elif kind == "object" and prop.get("properties"):
            f.widget = "group"
            f.children = self._build_fields(
                prop, f"{f.name}.", set(prop.get("required", [])), f.html_required
            )
        elif kind == "object" and isinstance(prop.get("additionalProperties"), dict):
            f.widget = "rows"
        elif isinstance(kind, list) and not {"object", "array"} & set(kind):
            f.widget = "scalar"
        else:
            f.widget = "json"

    def _number_attrs(self, f: ConfigField, *, integer: bool) -> None:
        f.widget = "number"
        f.input_type = "number"
        f.attrs["step"] = "1" if integer else "any"
        if "minimum" in f.schema:
            f.attrs["min"] = str(f.schema["minimum"])
        if "maximum" in f.schema:
            f.attrs["max"] = str(f.schema["maximum"])

    def _text_attrs(self, f: ConfigField) -> None:
        if "maxLength" in f.schema:
            f.attrs["maxlength"] = str(f.schema["maxLength"])
        if f.schema.get("format") == "uri" or str(f.schema.get("pattern", "")).startswith("^http"):
            f.input_type = "url"
        if f.datalist:
            f.attrs["list"] = f.datalist_id

    def _load(self, name: str, loader: Callable[[], Loaded]) -> Loaded:
        if name not in self._loaded:
            self._loaded[name] = loader()
        loaded: Loaded = self._loaded[name]
        return loaded

    def _custom_fields(self) -> list[tuple[str, str, str]]:
        return self._load("custom_fields", selectors.custom_field_choices)

    def _picker_options(self, f: ConfigField) -> None:
        picker = f.picker
        if "default" not in f.schema:
            blank = self._text(BLANK_LABELS, f.name, gettext("Choose…") if f.required else "—")
            f.choices.append(("", blank))
        if picker in (picks.SEGMENT, picks.STATIC_SEGMENT):
            static = picker == picks.STATIC_SEGMENT
            segments = self._load(picker, lambda: selectors.segment_choices(static_only=static))
            f.choices.extend((str(pk), name) for pk, name in segments)
        elif picker == picks.SALES_USER:
            users = self._load(picker, selectors.sales_user_choices)
            f.choices.extend((str(pk), name) for pk, name in users)
        elif picker == picks.SCORE_CATEGORY:
            f.choices.extend(self._load(picker, selectors.score_category_choices))
        elif picker == picks.EMAIL_TEMPLATE:
            templates = self._load(picker, selectors.email_template_choices)
            f.choices.extend((str(pk), name) for pk, name in templates)
        elif picker in (picks.LEAD_FIELD, picks.SETTABLE_FIELD):
            labels = standard_field_labels()
            if picker == picks.LEAD_FIELD:
                standard = [(name, labels[name]) for name in (*STANDARD_FIELDS, "owner")]
                custom = [(key, label) for key, label, _ in self._custom_fields()]
            else:
                standard = [(name, labels[name]) for name in SETTABLE_FIELDS]
                custom = [(f"custom.{key}", label) for key, label, _ in self._custom_fields()]
            f.groups.append((gettext("Standard fields"), standard))
            if custom:
                f.groups.append((gettext("Custom fields"), custom))
        elif picker == picks.TRIGGER:
            f.choices.extend(
                (t.key, str(t.label)) for t in REGISTRY.values() if t.kind == "trigger"
            )

    def _suggestions(self, picker: str) -> list[str]:
        if picker == picks.EVENT_NAME:
            return self._load(picker, lambda: selectors.event_names_seen("track"))
        if picker == picks.FORM_NAME:
            return self._load(picker, lambda: selectors.event_names_seen("form.submitted"))
        if picker == picks.PAGE_URL:
            return self._load(picker, selectors.page_urls_seen)
        return self._load(picker, selectors.tag_names)

    def _row(self, f: ConfigField, index: int) -> list[ConfigField]:
        item = f.schema["additionalProperties"]
        prefix = f"{f.name}.{index}."
        property_field = ConfigField(
            name=f"{prefix}property",
            label=str(LABELS["property"]),
            widget="text",
            html_id=f"{f.html_id}-{index}-property",
            attrs={"maxlength": "64"},
            in_row=True,
        )
        cells = [
            self._build_field(sub, f"{prefix}{key}", False, False, in_row=True)
            for key, sub in item.get("properties", {}).items()
        ]
        return [property_field, *cells]

    # --- showing values ---------------------------------------------------------------

    def _bind_config(self, fields: list[ConfigField], values: dict[str, Any]) -> None:
        for f in fields:
            value = values.get(f.key, f.schema.get("default", MISSING))
            self._show(f, value)

    def _show(self, f: ConfigField, value: Any) -> None:
        if f.widget == "group":
            self._bind_config(f.children, value if isinstance(value, dict) else {})
        elif f.widget == "rows":
            self._show_rows(f, value)
        elif f.widget == "times":
            self._show_times(f, value)
        elif f.widget == "checkbox":
            f.value = value is True
        elif f.widget == "checkboxes":
            f.value = [str(v) for v in value] if isinstance(value, list) else []
        elif f.widget == "json":
            f.value = "" if value is MISSING else json.dumps(value, indent=2, ensure_ascii=False)
        elif f.widget == "conditions":
            self._show_tree(f, value if isinstance(value, dict) else MISSING)
        elif f.widget == "scalar":
            f.value = self._scalar_text(f, value)
        elif f.widget == "secret":
            f.value = ""
            f.secret_set = value is not MISSING and secret_value_set(value)
        else:
            f.value = "" if value is MISSING or value is None else str(value)
        if f.widget == "select":
            self._keep_unlisted_option(f)

    def _show_rows(self, f: ConfigField, value: Any) -> None:
        entries = list(value.items()) if isinstance(value, dict) else []
        for index, (prop, test) in enumerate(entries[:MAX_ROWS]):
            row = self._row(f, index)
            row[0].value = str(prop)
            test = test if isinstance(test, dict) else {}
            for cell in row[1:]:
                cell_value = test.get(cell.key, cell.schema.get("default", MISSING))
                if cell.widget == "scalar":
                    cell.value = self._scalar_text(cell, cell_value, op=test.get("op"))
                else:
                    self._show(cell, cell_value)
            f.rows.append(row)
        self._add_blank_row(f)

    def _show_times(self, f: ConfigField, value: Any) -> None:
        items = value if isinstance(value, list) else []
        for index, child in enumerate(f.children):
            item = items[index] if index < len(items) else ""
            child.value = item if isinstance(item, str) else ""

    def _scalar_text(self, f: ConfigField, value: Any, *, op: Any = None) -> str:
        if value is MISSING:
            return ""
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if f.in_row and isinstance(value, str) and op == "is":
            # Quoted when the text would otherwise be read back as a number or boolean.
            return json.dumps(value, ensure_ascii=False) if _literal(value) != value else value
        return str(value)

    def _keep_unlisted_option(self, f: ConfigField) -> None:
        # A config can name something no longer offered (a deleted segment, a rep
        # who left sales): keep it visible rather than silently showing another.
        if f.value != "" and f.value not in f.option_values():
            f.choices.append((f.value, gettext("%(value)s (not available)") % {"value": f.value}))

    def _add_blank_row(self, f: ConfigField) -> None:
        limit = int(f.schema.get("maxProperties", MAX_ROWS))
        if len(f.rows) < limit:
            row = self._row(f, len(f.rows))
            self._bind_config(row[1:], {})
            f.rows.append(row)

    def _bind_data(self, fields: list[ConfigField], data: QueryDict) -> None:
        for f in fields:
            if f.widget == "group":
                self._bind_data(f.children, data)
            elif f.widget == "rows":
                self._bind_rows(f, data)
            elif f.widget == "times":
                for child in f.children:
                    child.value = data.get(child.name, "")
            elif f.widget == "checkbox":
                f.value = f.name in data
            elif f.widget == "conditions":
                self._bind_tree(f, data)
            elif f.widget == "checkboxes":
                f.value = data.getlist(f.name)
            elif f.widget == "secret":
                f.value = data.get(f.name, "")
                f.secret_set = f.name in data.getlist("secret-set")
                f.secret_clear = f.name in data.getlist("secret-clear")
            else:
                f.value = data.get(f.name, "")
                if f.widget == "select":
                    self._keep_unlisted_option(f)

    def _bind_rows(self, f: ConfigField, data: QueryDict) -> None:
        pattern = re.compile(re.escape(f.name) + r"\.(\d{1,3})\.")
        indexes = sorted({int(m.group(1)) for key in data if (m := pattern.match(key))})[:MAX_ROWS]
        for position, index in enumerate(indexes):
            row = self._row(f, position)
            for cell in row:
                posted = f"{f.name}.{index}.{cell.key}"
                cell.value = data.get(posted, "")
            f.rows.append(row)

    def _show_tree(self, f: ConfigField, tree: Any) -> None:
        f.tree = None if tree is MISSING else tree
        f.value = "" if tree is MISSING else json.dumps(tree, indent=2, ensure_ascii=False)

    def _bind_tree(self, f: ConfigField, data: QueryDict) -> None:
        """The tree from the builder's fields, or from the JSON when that was
        edited (it differs from the JSON the form last showed); then the
        builder's edit (add a rule, remove a group) if one was asked for."""
        f.json_mode = f"{f.name}-as-json" in data
        text = data.get(f.name, "")
        shown = data.get(f"{f.name}-shown", "")
        tree: Any
        if text.strip() != shown.strip() or "c-match" not in data:
            f.value = text
            tree = self._parse_json(f, text.strip())
            f.tree = None if tree is MISSING else tree
            # JSON that does not read stays shown as typed, with its problem.
            f.json_mode = f.json_mode or tree is MISSING
        else:
            tree = tree_from_form(data, definitions=self._definitions())
            action = data.get("builder_action", "")
            if action:
                tree = builder_apply(tree, action)
            f.tree = tree
            f.value = json.dumps(tree, indent=2, ensure_ascii=False)

    def _definitions(self) -> dict[str, Any]:
        return self._load("definitions", lambda: {d.key: d for d in FieldDefinition.objects.all()})

    def builders_prepare(self, form_url: str) -> None:
        """Load what the condition tree's builder shows (its choices: fields,
        segments, owners, …), which edits post to ``form_url``."""
        tree_field = self.tree_field()
        if tree_field is not None:
            tree_field.builder = self._builder(tree_field, form_url)

    def _builder(self, f: ConfigField, form_url: str) -> dict[str, Any]:
        """What the segment builder's templates need to show ``f``'s tree."""
        tree = f.tree if isinstance(f.tree, dict) and _is_group(f.tree) else None
        if tree is None:
            tree = {"all": [dict(NEW_RULE)]} if f.tree is None else {"all": [f.tree]}
        choices = BuilderChoices(
            definitions=self._definitions(),
            categories=list(selectors.score_category_choices()),
            owners=list(lead_owner_choices()),
            tags=selectors.tag_names(),
            segments=list(selectors.segment_choices(static_only=False)),
            event_names=event_names(types=activity_types_in(tree)),
        )
        root: BuilderNode = builder_nodes(tree, choices, f.tree_errors)
        return {
            "root": root,
            # The count of a read-only panel reads the tree from the URL.
            "count_query": urlencode(
                {"type": self.node_type.key, "config": json.dumps({f.key: f.tree})}
            ),
            "choices": choices,
            "field_choices": choices.field_choices(),
            "activity_choices": [(a, ACTIVITY_LABELS[a]) for a in COUNTABLE_TYPES],
            "count_choices": list(COUNT_LABELS.items()),
            "form_url": form_url,
        }

    # --- parsing ----------------------------------------------------------------------

    def _fail(self, f: ConfigField, message: str) -> Any:
        f.errors.append(message)
        self._parse_failed.add(f.name)
        return MISSING

    def _parse_into(self, fields: list[ConfigField], out: dict[str, Any]) -> dict[str, Any]:
        for f in fields:
            value = self._parse(f, out)
            if value is not MISSING:
                out[f.key] = value
            elif (
                f.name in self._parse_failed
                and f.widget in ("text", "number", "scalar")
                and str(f.value).strip()
            ):
                # Kept as typed, so that leaving the step loses nothing; the
                # form and publishing still say what is wrong with it.
                out[f.key] = str(f.value).strip()
        return out

    def _parse(self, f: ConfigField, siblings: dict[str, Any]) -> Any:
        if f.widget == "group":
            if not f.required and self._blank(f.children):
                return MISSING
            return self._parse_into(f.children, {})
        if f.widget == "rows":
            return self._parse_rows(f)
        if f.widget == "checkbox":
            return bool(f.value)
        if f.widget == "checkboxes":
            return self._parse_checkboxes(f)
        if f.widget == "times":
            return self._parse_times(f)
        if f.widget == "secret":
            return self._parse_secret(f)
        if f.widget == "conditions":
            return MISSING if f.tree is None else f.tree
        text = str(f.value).strip()
        if f.widget == "json":
            return self._parse_json(f, text)
        if f.widget == "scalar":
            return self._parse_scalar(f, text, siblings)
        return self._parse_text(f, text)

    def _parse_secret(self, f: ConfigField) -> Any:
        # Typed: the new value. Else, cleared on purpose: "" (which saving
        # turns into no secret), or kept: the mask, which saving resolves.
        if str(f.value).strip():
            return str(f.value)
        if f.secret_set:
            return "" if f.secret_clear else SECRET_SET
        return MISSING

    def _parse_text(self, f: ConfigField, text: str) -> Any:
        """A text input or a select, read by the schema's type."""
        if text == "":
            return MISSING
        if f.schema.get("type") == "integer" or f.picker in INTEGER_PICKERS:
            if not INTEGER.fullmatch(text):
                if f.widget == "select":
                    return self._fail(f, gettext("Choose one of the options."))
                return self._fail(f, gettext("Enter a whole number."))
            return int(text)
        if f.schema.get("type") == "number":
            number = _number(text)
            return self._fail(f, gettext("Enter a number.")) if number is None else number
        return text

    def _blank(self, fields: list[ConfigField]) -> bool:
        for f in fields:
            if f.widget == "group":
                if not self._blank(f.children):
                    return False
            elif f.widget == "select":
                if f.value not in ("", str(f.schema.get("default", ""))):
                    return False
            elif f.widget == "times":
                if not self._blank(f.children):
                    return False
            elif f.widget == "rows":
                if any(str(cell.value).strip() for row in f.rows for cell in row):
                    return False
            elif (f.widget == "secret" and f.secret_set) or (f.value and str(f.value).strip()):
                return False
        return True

    def _parse_rows(self, f: ConfigField) -> Any:
        result: dict[str, Any] = {}
        positions = self._row_of.setdefault(f.name, {})
        for index, row in enumerate(f.rows):
            name_field, cells = row[0], row[1:]
            prop = str(name_field.value).strip()
            if not prop and not any(str(c.value).strip() for c in cells if c.widget != "select"):
                continue
            if not prop:
                self._fail(name_field, gettext("Name the property."))
                continue
            if prop in result:
                self._fail(name_field, gettext("This property is filtered in another row."))
                continue
            positions[prop] = index
            result[prop] = self._parse_into(cells, {})
        return result or MISSING

    def _parse_checkboxes(self, f: ConfigField) -> Any:
        allowed = {value for value, _ in f.choices}
        if any(value not in allowed for value in f.value):
            return self._fail(f, gettext("Choose from the listed options."))
        return sorted({int(value) for value in f.value}) or MISSING

    def _parse_times(self, f: ConfigField) -> Any:
        values = []
        for child in f.children:
            text = str(child.value).strip()
            if re.fullmatch(r"\d\d:\d\d:\d\d", text):
                text = text[:5]
            values.append(text)
        if not any(values):
            return MISSING
        for child, text in zip(f.children, values, strict=True):
            if not text:
                self._fail(child, gettext("Enter both times, or neither."))
        return MISSING if not all(values) else values

    def _parse_json(self, f: ConfigField, text: str) -> Any:
        if not text:
            return MISSING
        try:
            return json_loads_limited(text)
        except json.JSONDecodeError as exc:
            return self._fail(
                f,
                gettext("This is not valid JSON: %(problem)s (line %(line)d, column %(column)d).")
                % {"problem": exc.msg, "line": exc.lineno, "column": exc.colno},
            )
        except ValueError as exc:  # nested too deep, or NaN
            return self._fail(f, gettext("This is not valid JSON: %(problem)s") % {"problem": exc})
        except RecursionError:
            return self._fail(f, gettext("This JSON is nested too deeply."))

    def _parse_scalar(self, f: ConfigField, text: str, siblings: dict[str, Any]) -> Any:
        if f.in_row:
            op = siblings.get("op")
            if text == "":
                return MISSING
            if op in NUMERIC_OPS:
                number = _number(text)
                return self._fail(f, gettext("Enter a number.")) if number is None else number
            return _literal(text) if op == "is" else text
        kind = self._field_kind(f)
        if text == "":
            if f.required and kind in ("text", "choice", "date", None):
                return ""
            return MISSING
        if text == "null" and "null" in f.schema.get("type", []):
            return None
        if kind in ("number", "user"):
            number = _number(text, integer=kind == "user")
            return self._fail(f, gettext("Enter a number.")) if number is None else number
        if kind == "boolean":
            if text.lower() not in BOOL_WORDS:
                return self._fail(f, gettext("Enter true or false."))
            return BOOL_WORDS[text.lower()]
        return text

    def _field_kind(self, f: ConfigField) -> str | None:
        """The type of the lead field chosen next to ``f`` (text, number, boolean,
        choice, date, user for the owner), or None when none is chosen."""
        parent = f.name.rpartition(".")[0]
        sibling = self._by_name().get(f"{parent}.field" if parent else "field")
        if sibling is None or not sibling.value:
            return None
        key = str(sibling.value)
        if key == "owner":
            return "user"
        if not key.startswith("custom.") and key in STANDARD_FIELDS:
            return STANDARD_FIELDS[key]
        custom = {k: kind for k, _, kind in self._custom_fields()}
        return custom.get(key.removeprefix("custom."))

    # --- validation -------------------------------------------------------------------

    def _all_fields(self) -> list[ConfigField]:
        found: list[ConfigField] = []
        stack = list(self.fields)
        while stack:
            f = stack.pop()
            found.append(f)
            stack.extend(f.children)
            for row in f.rows:
                stack.extend(row)
        return found

    def _by_name(self) -> dict[str, ConfigField]:
        return {f.name: f for f in self._all_fields()}

    def _validate(self) -> None:
        by_name = self._by_name()
        config = config_checkable(self.node_type, self.config)
        for path, messages in config_problems(self.node_type, config).items():
            head, _dot, rest = path.partition(".")
            tree_field = by_name.get(head)
            if (
                tree_field is not None
                and tree_field.widget == "conditions"
                and rest
                and not tree_field.json_mode
            ):
                tree_field.tree_errors.setdefault(rest, []).extend(messages)
                continue
            for message in messages:
                target, text = self._locate(path, message, by_name)
                if target is None:
                    self.general.append(text)
                elif target.name not in self._parse_failed and text not in target.errors:
                    target.errors.append(text)

    def _locate(
        self, path: str, message: str, by_name: dict[str, ConfigField]
    ) -> tuple[ConfigField | None, str]:
        """The field a problem at a config path belongs to, and how to word it."""
        parts = path.split(".") if path else []
        for rows_name, positions in self._row_of.items():
            depth = len(rows_name.split("."))
            inside = parts[:depth] == rows_name.split(".") and len(parts) > depth
            if inside and parts[depth] in positions:
                parts[depth] = str(positions[parts[depth]])
        for end in range(len(parts), 0, -1):
            target = by_name.get(".".join(parts[:end]))
            if target is not None:
                rest = ".".join(parts[end:])
                if rest and target.widget in ("json", "conditions"):
                    return target, gettext("At %(path)s: %(problem)s") % {
                        "path": rest,
                        "problem": message,
                    }
                return target, message
        return None, message


def _is_group(tree: dict[str, Any]) -> bool:
    return len(tree) == 1 and isinstance(tree.get("all", tree.get("any")), list)


def _number(text: str, *, integer: bool = False) -> int | float | None:
    text = text.strip()
    if INTEGER.fullmatch(text):
        return int(text)
    if integer or not NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _literal(text: str) -> Any:
    """What an "is" comparison value means: true/false and numbers as such, text
    in double quotes as that text, anything else as typed."""
    if text in ("true", "false"):
        return text == "true"
    number = _number(text)
    if number is not None:
        return number
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text[1:-1]
        return value if isinstance(value, str) else text
    return text


def config_from_param(raw: str) -> tuple[dict[str, Any], str]:
    """The ``config`` query parameter as a dict, or {} with the problem to show."""
    if not raw.strip():
        return {}, ""
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError):
        config = None
    if not isinstance(config, dict):
        return {}, gettext("The node's settings could not be read, so the defaults are shown.")
    return config, ""

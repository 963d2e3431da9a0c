"""What a node type is. Each type is declared once: the palette, the config form,
server-side validation, the API schema and the engine all read that declaration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext, ngettext
from jsonschema import Draft202012Validator

from core import prepared

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from flows.models import Enrollment, StepRun
    from flows.nodes.simulation import Simulation
from leads.models import Event, Lead
from segments.names import Names as RecordNames

KINDS = ("trigger", "action", "condition", "wait", "exit")

# A secret setting (a signing key, a URL that is itself a credential) is declared
# in the node's schema with JSON Schema's own ``"writeOnly": true``. It is written,
# never read back: every graph or config that leaves the server carries this in
# its place while it is set, and a config that comes back with it (or without the
# key) keeps the stored value; ``""`` or null clears it. Published versions hold
# the real value, since the engine needs it.
SECRET_SET = "********"  # noqa: S105 (the mask, not a password)

# Pickers: what a config value is chosen from. The first kinds name a record (or
# a trigger type), which the config form offers as a select and a summary shows
# by name; the next are free text with suggestions from data seen; the last two
# are widgets.
SEGMENT = "segment"
STATIC_SEGMENT = "static_segment"
SALES_USER = "sales_user"
SCORE_CATEGORY = "score_category"
EMAIL_TEMPLATE = "email_template"
LEAD_FIELD = "lead_field"  # standard fields, owner, and custom fields by bare key
SETTABLE_FIELD = "settable_field"  # standard fields a flow may set, custom as custom.<key>
TRIGGER = "trigger"  # a trigger type; its config sits next to it under "config"
EVENT_NAME = "event_name"
PAGE_URL = "page_url"
FORM_NAME = "form_name"
TAG = "tag"
WEEKDAYS = "weekdays"
TIME_WINDOW = "time_window"
CONDITION_TREE = "condition_tree"  # a segment-like condition tree, edited in the segment builder


@dataclass
class StepContext:
    """What an executing node sees. ``lead`` is locked for the transaction."""

    enrollment: Enrollment
    step: StepRun
    lead: Lead
    config: dict[str, Any]
    trigger_event: Event | None
    now: dt.datetime
    # The enrollment's rows, this step's among them, not written yet: they go
    # with the step's first write (``NodeType.opens``), which takes its key
    # from them; the engine writes them itself if the step does not.
    within: prepared.Within | None = None


class StepError(Exception):
    """A step cannot run (its configuration names something gone, …), raised
    before it wrote anything: the step fails (and is retried), the event's other
    effects stand."""


@dataclass
class StepResult:
    """``follow``: the output handles to go on through. ``wait_until``: park the
    step until then (a wake-up). ``end``: the enrollment is over."""

    follow: tuple[str, ...] = ("next",)
    wait_until: dt.datetime | None = None
    wait_for_delivery: bool = False
    end: bool = False
    output: dict[str, Any] = field(default_factory=dict)


# What a simulated step would do (``SimResult.outcome``).
WOULD_APPLY = "would_apply"
NO_CHANGE = "no_change"
YES = "yes"
NO = "no"
WAITED = "waited"
TIMEOUT = "timeout"
ENDED = "ended"


@dataclass(frozen=True)
class SimResult:
    """A step of a dry run: its ``outcome`` (above), its ``effect`` in words, and
    the output ``handle`` the walk goes on through (None: the walk ends)."""

    outcome: str
    effect: str
    handle: str | None = "next"


@dataclass
class Names(RecordNames):
    """Display names of the records configs point at (``segments.names``), and of
    flows; loaded before summarising so that a whole graph costs one query per
    kind. A missing id raises KeyError, which makes the summary empty: the
    config names something that is gone."""

    flows: dict[int, str] = field(default_factory=dict)
    email_templates: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeType:
    key: str
    kind: str
    label: StrOrPromise
    description: StrOrPromise
    icon: str
    schema: dict[str, Any]
    outputs: tuple[str, ...] = ("next",)
    # Triggers: the (event type, match key) a config subscribes to, and the full
    # test of an event against the config.
    subscribe: Callable[[dict[str, Any]], tuple[str, str]] | None = None
    matches: Callable[[Event, dict[str, Any]], bool] | None = None
    # Everything else: what it does, and what it would do (the dry run: reads
    # only, and tells on the simulated lead of ``Simulation``, which it updates).
    # Both take their decisions from the same pure functions (flows.rules).
    execute: Callable[[StepContext], StepResult] | None = None
    simulate: Callable[[Simulation, dict[str, Any]], SimResult] | None = None
    # Server-side checks JSON Schema cannot express (ids that must exist …):
    # returns {config path: [messages]}.
    check: Callable[[dict[str, Any]], dict[str, list[str]]] | None = None
    # The canvas label for a valid config, e.g. "Entered segment: Hot leads".
    summary: Callable[[dict[str, Any], Names], str] | None = None
    # Config path (dotted for nested objects) to picker kind, see above.
    pickers: dict[str, str] = field(default_factory=dict)
    # Runs in a savepoint, so that any failure undoes only its own writes and
    # fails only the step. A node that is not isolated raises StepError before
    # its first write; any other failure fails the whole event, which is
    # retried. It saves two round trips on the hottest steps.
    isolated: bool = True
    # Whether its execute writes to the database. One that does not (it decides,
    # or only reads) runs without the savepoint, which costs two round trips and
    # would have nothing to undo: a failure of its own still fails only the
    # step; a database error, after which PostgreSQL takes no further statement
    # in the transaction, fails the event, which is retried, as a segment check's
    # does.
    writes: bool = True
    # Its first write can take a new enrollment's rows into its own statement
    # (``StepContext.within``, PostgreSQL): the rows are its step's key. Only
    # for a node that is not isolated (a savepoint would come first).
    opens: bool = False

    @cached_property
    def secrets(self) -> tuple[str, ...]:
        """Config paths (dotted for nested objects) of the write-only settings."""
        return tuple(_write_only_paths(self.schema, ""))

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "label": str(self.label),
            "description": str(self.description),
            "icon": self.icon,
            "outputs": list(self.outputs) if self.kind != "exit" else [],
            "config_schema": self.schema,
        }


REGISTRY: dict[str, NodeType] = {}


def register(node: NodeType) -> NodeType:
    if node.key in REGISTRY:
        raise ValueError(f"Node type {node.key!r} is declared twice.")
    if node.kind not in KINDS:
        raise ValueError(f"Unknown kind {node.kind!r}.")
    if node.kind == "trigger" and (node.subscribe is None or node.matches is None):
        raise ValueError(f"Trigger {node.key!r} needs subscribe and matches.")
    if node.kind != "trigger" and (node.execute is None or node.simulate is None):
        raise ValueError(f"Node {node.key!r} needs execute and simulate.")
    for path in node.secrets:
        # A config shown with the secret masked must still validate, and it does
        # because the mask is left out for checking: so the secret cannot be required.
        parent, _, key = path.rpartition(".")
        holder = _schema_at(node.schema, parent)
        if key in holder.get("required", ()):
            raise ValueError(f"Secret {path!r} of {node.key!r} cannot be required.")
    REGISTRY[node.key] = node
    return node


def _write_only_paths(schema: dict[str, Any], prefix: str) -> list[str]:
    paths = []
    for key, prop in schema.get("properties", {}).items():
        if prop.get("writeOnly"):
            paths.append(f"{prefix}{key}")
        elif prop.get("type") == "object":
            paths.extend(_write_only_paths(prop, f"{prefix}{key}."))
    return paths


def _schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for key in path.split(".") if path else ():
        schema = schema["properties"][key]
    return schema


_UNSET: Any = object()


def _get(config: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(config, dict) or key not in config:
            return _UNSET
        config = config[key]
    return config


def _put(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``config`` with ``path`` set to ``value`` (_UNSET removes it); the
    objects on the way are copied, the rest shared."""
    key, _, rest = path.partition(".")
    out = dict(config)
    if rest:
        inner = out.get(key)
        if not isinstance(inner, dict):
            return out
        out[key] = _put(inner, rest, value)
    elif value is _UNSET:
        out.pop(key, None)
    else:
        out[key] = value
    return out


def _is_set(value: Any) -> bool:
    return value is not _UNSET and value is not None and value != ""


def config_mask(node_type: NodeType, config: Any) -> Any:
    """``config`` as it may leave the server: each secret that is set shows as
    ``SECRET_SET``, one that is not is left out."""
    if not node_type.secrets or not isinstance(config, dict):
        return config
    for path in node_type.secrets:
        value = _get(config, path)
        if value is not _UNSET:
            config = _put(config, path, SECRET_SET if _is_set(value) else _UNSET)
    return config


def config_unmask(node_type: NodeType, config: Any, stored: Any) -> Any:
    """``config`` as it came back, with the secrets to keep: where it carries
    ``SECRET_SET`` or leaves the key out, the ``stored`` config's value stays; an
    empty value (``""``, null) clears it; anything else replaces it."""
    if not node_type.secrets or not isinstance(config, dict):
        return config
    for path in node_type.secrets:
        value = _get(config, path)
        if value is _UNSET or value == SECRET_SET:
            kept = _get(stored, path)
            value = kept if _is_set(kept) and kept != SECRET_SET else _UNSET
        elif not _is_set(value):
            value = _UNSET
        config = _put(config, path, value)
    return config


def config_checkable(node_type: NodeType, config: Any) -> Any:
    """``config`` for checking and summarising while it may carry the mask (the
    side panel's form, the canvas's summaries): a masked or cleared secret is left
    out, a new one stays to be checked."""
    if not node_type.secrets or not isinstance(config, dict):
        return config
    for path in node_type.secrets:
        value = _get(config, path)
        if value is not _UNSET and (value == SECRET_SET or not _is_set(value)):
            config = _put(config, path, _UNSET)
    return config


def secret_value_set(value: Any) -> bool:
    """Whether a secret's value (stored, or masked) means it is set."""
    return _is_set(value)


_validators: dict[str, Draft202012Validator] = {}


def summarise(node_type: NodeType, config: Any, names: Names) -> str:
    """The node's canvas summary, or "" when the config does not fit its schema
    or names a record that is gone."""
    validator = _validators.get(node_type.key)
    if validator is None:
        validator = _validators[node_type.key] = Draft202012Validator(node_type.schema)
    config = config_checkable(node_type, config)
    if node_type.summary is None or not validator.is_valid(config):
        return ""
    try:
        return node_type.summary(config, names)
    except KeyError:
        return ""


def once_suffix(config: dict[str, Any]) -> str:
    return gettext(", once per lead") if config.get("once_per_lead") else ""


def text_match_phrase(test: dict[str, Any]) -> str:
    """``{"op": "contains", "value": "/pricing"}`` as "containing /pricing"."""
    phrases = {
        "contains": gettext("containing %(value)s"),
        "starts_with": gettext("starting with %(value)s"),
    }
    return phrases.get(test["op"], "%(value)s") % {"value": test["value"]}


def value_text(value: Any) -> str:
    if value is None:
        return gettext("empty")
    if isinstance(value, bool):
        return gettext("true") if value else gettext("false")
    return str(value)


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON Schema object with no other keys allowed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


TEXT_MATCH = obj(
    {
        "op": {"type": "string", "enum": ["is", "contains", "starts_with"], "default": "contains"},
        "value": {"type": "string", "minLength": 1, "maxLength": 500},
    },
    ("op", "value"),
)


def text_matches(test: dict[str, Any] | None, value: Any) -> bool:
    if not test:
        return True
    if not isinstance(value, str):
        return False
    wanted: str = test["value"].lower()
    got = value.lower()
    if test["op"] == "is":
        return got == wanted
    if test["op"] == "starts_with":
        return got.startswith(wanted)
    return wanted in got


def amount_text(amount: int, unit: str) -> str:
    return f"{amount} {unit.removesuffix('s') if amount == 1 else unit}"


def duration_text(amount: int, unit: str) -> str:
    """``amount_text`` in the active language, for the canvas summaries."""
    units = {
        "seconds": ngettext("%(count)d second", "%(count)d seconds", amount),
        "minutes": ngettext("%(count)d minute", "%(count)d minutes", amount),
        "hours": ngettext("%(count)d hour", "%(count)d hours", amount),
        "days": ngettext("%(count)d day", "%(count)d days", amount),
        "weeks": ngettext("%(count)d week", "%(count)d weeks", amount),
    }
    if unit not in units:
        return amount_text(amount, unit)
    return units[unit] % {"count": amount}

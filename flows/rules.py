"""The flow decisions the engine and the dry run share, as pure functions.

The engine (flows.engine and the nodes' ``execute``) applies them; the dry run
(flows.dryrun and the nodes' ``simulate``) predicts with them. Whatever one
decides, the other decides alike, because there is one function. Reads and
writes stay with the callers: nothing here touches the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext, ngettext

from flows.models import Reentry
from leads.models import CLOSED_STAGES, Stage
from leads.services.fields import STANDARD_FIELDS

# Standard fields a flow may set ("Set field"); the rest are identity or have
# their own nodes.
SETTABLE_FIELDS = sorted(set(STANDARD_FIELDS) - {"email", "external_id", "stage", "unsubscribed"})

# --- stages ----------------------------------------------------------------------------

# The lifecycle in order; "forward only" moves along it, never back. Lost and
# disqualified are outside it.
STAGE_ORDER: list[str] = [
    Stage.SUBSCRIBER,
    Stage.LEAD,
    Stage.MQL,
    Stage.SQL,
    Stage.OPPORTUNITY,
    Stage.CUSTOMER,
]

# Why a "Change lifecycle stage" step leaves the stage where it is.
BEHIND = "behind"  # forward only, and the target is not ahead of the current stage
DISQUALIFIED = "disqualified"  # forward only, and the lead is disqualified


def stage_move_refusal(*, current: str, target: str, forward_only: bool) -> str | None:
    """Why moving a lead in stage ``current`` to ``target`` is refused (BEHIND,
    DISQUALIFIED), or None when the step sets the stage (to the same stage too,
    when it is not forward only)."""
    if not forward_only:
        return None
    ordered = current in STAGE_ORDER and target in STAGE_ORDER
    if ordered and STAGE_ORDER.index(target) <= STAGE_ORDER.index(current):
        return BEHIND
    if current == Stage.DISQUALIFIED:
        return DISQUALIFIED
    return None


# --- sales tasks -------------------------------------------------------------------------

_UNIT_SECONDS = {"hours": 3600, "days": 86400}


def task_due(*, due_in: dict[str, Any] | None, now: dt.datetime) -> dt.datetime | None:
    """When a "Notify sales" task created at ``now`` is due: ``due_in``
    (``{"amount": 2, "unit": "hours"|"days"}``) later, or never without one."""
    if not due_in:
        return None
    return now + dt.timedelta(seconds=due_in["amount"] * _UNIT_SECONDS.get(due_in["unit"], 86400))


# Why "Notify sales" created no task (``StepRun.output["skipped"]``).
CLOSED_STAGE = "closed_stage"


def follow_up_refusal(*, stage: str) -> str | None:
    """Why "Notify sales" creates no follow-up task for a lead in ``stage``, in
    words for the step's log and the dry run, or None when it creates one: sales
    is not sent after customers, lost or disqualified leads."""
    if stage not in CLOSED_STAGES:
        return None
    reasons: dict[str, str] = {
        Stage.CUSTOMER: gettext("No task for sales: the lead is already a customer."),
        Stage.LOST: gettext("No task for sales: the lead is marked as lost."),
        Stage.DISQUALIFIED: gettext("No task for sales: the lead is disqualified."),
    }
    return reasons.get(stage) or gettext("No task for sales: the lead is no longer a prospect.")


def lead_name(*, first_name: str, last_name: str, email: str | None, lead_id: int | None) -> str:
    """How a task names its lead: the full name, else the email, else "lead #12"."""
    return f"{first_name} {last_name}".strip() or email or gettext("lead #%(id)s") % {"id": lead_id}


def task_title(*, template: str, name: str) -> str:
    """A task's title: the node's title with ``{lead}`` replaced by the lead's name."""
    return template.replace("{lead}", name)


# --- calling on people for old events ------------------------------------------------


# A "Notify sales" step skipped for an old event: its output's "skipped".
STALE_EVENT = "stale_event"


def stale_cause_skip(
    *, occurred_at: dt.datetime | None, taken_at: dt.datetime, max_age_days: int
) -> str | None:
    """Why a step that calls on people (a task, a notification) does nothing: the
    event that caused it happened more than ``max_age_days`` days before the flow
    took it up (``taken_at``: when the lead entered the flow on it; a wait in the
    flow since does not make it old). History loaded after the fact asks nobody
    to act on what is long past. None: the step acts, as it does without a cause
    event."""
    if occurred_at is None or taken_at - occurred_at <= dt.timedelta(days=max_age_days):
        return None
    return stale_event_words(occurred_at=occurred_at, max_age_days=max_age_days)


def stale_event_words(*, occurred_at: dt.datetime, max_age_days: int) -> str:
    """The skip in words, for the step's log, the dry run and the profile."""
    more = ngettext("more than %(days)d day ago", "more than %(days)d days ago", max_age_days) % {
        "days": max_age_days
    }
    return gettext("skipped: the event happened on %(date)s, %(more)s") % {
        "date": f"{occurred_at.astimezone(dt.UTC):%Y-%m-%d}",
        "more": more,
    }


# --- emails not opened in a row --------------------------------------------------------

DELIVERED = "email.delivered"
# What makes or breaks a streak of emails not opened: a click counts as an open
# (images blocked, the link followed).
EMAIL_STREAK_TYPES = (DELIVERED, "email.opened", "email.clicked")
IGNORED_MIN, IGNORED_MAX = 2, 20


def unopened_streak_reached(*, recent: Sequence[str], count: int) -> bool:
    """Whether the delivery at the head of ``recent`` is the ``count``-th in a row
    with no open or click since the first of them. ``recent``: the lead's email
    event types (``EMAIL_STREAK_TYPES``), newest first, from that delivery back,
    at least ``count + 1`` of them when there are. Once per streak: the first
    ``count`` are deliveries and the one before them is not (or there is none);
    the next delivery makes a streak of ``count + 1``, and only an open or a
    click starts a new one."""
    head = list(recent[: count + 1])
    if len(head) < count or any(kind != DELIVERED for kind in head[:count]):
        return False
    return len(head) == count or head[count] != DELIVERED


# --- entry (the re-entry rule) -----------------------------------------------------------

# The rule that decided an entry.
TRIGGER_ONCE = "trigger_once"  # the trigger lets each lead through once, and this one came


@dataclass(frozen=True)
class Entry:
    """Whether a lead may enter a flow now, and what decided it. ``rule``:
    TRIGGER_ONCE, or the flow's re-entry rule (``Reentry``). ``last_at``: when
    the lead last entered the flow (when that was read). ``again_at``: when a
    lead kept out by "once per N days" may enter again."""

    allowed: bool
    rule: str
    last_at: dt.datetime | None = None
    again_at: dt.datetime | None = None


def entry_reads(*, reentry: str, once_per_lead: bool) -> tuple[bool, bool]:
    """What an entry decision needs read: (whether the lead came in through this
    trigger before, when it last entered the flow). Every time, with no
    once-per-lead trigger, needs nothing."""
    return once_per_lead, reentry in (Reentry.ONCE, Reentry.DAYS)


def entry_decide(
    *,
    reentry: str,
    reentry_days: int | None,
    once_per_lead: bool,
    now: dt.datetime,
    through_trigger: bool = False,
    last_at: dt.datetime | None = None,
) -> Entry:
    """The re-entry rule. A trigger that lets each lead through once keeps out a
    lead that came through it (``through_trigger``); then the flow's rule: once
    (kept out if it ever entered), once per N days (kept out if it entered in the
    last N days; N defaults to 1), every time. ``last_at``: when the lead last
    entered the flow, None if never (only read when the rule needs it, see
    ``entry_reads``)."""
    if once_per_lead and through_trigger:
        return Entry(False, TRIGGER_ONCE, last_at)
    if reentry == Reentry.ONCE:
        return Entry(last_at is None, Reentry.ONCE, last_at)
    if reentry == Reentry.DAYS:
        window = dt.timedelta(days=reentry_days or 1)
        if last_at is not None and last_at >= now - window:
            return Entry(False, Reentry.DAYS, last_at, last_at + window)
        return Entry(True, Reentry.DAYS, last_at)
    return Entry(True, Reentry.ALWAYS, last_at)


# --- the grade trigger -------------------------------------------------------------------


def grade_reached(
    *,
    properties: dict[str, Any],
    grade: str | None = None,
    fit: str | None = None,
    engagement: str | None = None,
) -> bool:
    """Whether a ``grade.changed`` event (its ``properties``) took the lead into
    the state the trigger asks for, from outside it: the grade ``grade``, a fit
    grade of ``fit`` or better, an engagement grade of ``engagement`` or better
    (each None: any). Letters and digits both sort best first ("A" < "B", "1" <
    "2"). An event without the axes (from before them) left the axes alone."""

    def holds(suffix: str, grade_key: str) -> bool:
        now_grade = properties.get(grade_key)
        now_fit = properties.get(f"fit_{suffix}", properties.get("fit_to"))
        now_engagement = properties.get(f"engagement_{suffix}", properties.get("engagement_to"))
        if grade is not None and now_grade != grade:
            return False
        if fit is not None and not (isinstance(now_fit, str) and now_fit <= fit):
            return False
        return engagement is None or (
            isinstance(now_engagement, str) and now_engagement <= engagement
        )

    if grade is None and fit is None and engagement is None:
        return False
    return holds("to", "to") and not holds("from", "from")


# --- routing and the graph ---------------------------------------------------------------


def event_match_keys(*, name: str, properties: dict[str, Any]) -> set[str]:
    """The match keys an event is routed by: "" (every event of its type), its
    name, and the segment it is about (``segment.entered``/``left``)."""
    keys = {"", name}
    if "segment_id" in properties:
        keys.add(str(properties["segment_id"]))
    return keys


@dataclass(frozen=True)
class GraphIndex:
    """A graph's nodes by id, and its edges by (source, output handle) as (edge
    id, target) in graph order. An edge without a handle leaves through "next"."""

    nodes: dict[str, dict[str, Any]]
    edges: dict[tuple[str, str], list[tuple[str, str]]]

    def targets(self, node_id: str, handle: str) -> list[str]:
        """The nodes an output leads to."""
        return [target for _, target in self.edges.get((node_id, handle), ())]


def graph_index(graph: dict[str, Any]) -> GraphIndex:
    """Index a graph (``{nodes, edges}``) for walking it."""
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for edge in graph.get("edges", []):
        key = (edge["source"], edge.get("sourceHandle") or "next")
        edges.setdefault(key, []).append((str(edge.get("id", "")), edge["target"]))
    return GraphIndex({node["id"]: node for node in graph["nodes"]}, edges)

"""Flow templates: ready-made graphs a new flow can start from.

Each template builds its graph when a flow is created from it, so that the
segments it relies on exist by then (found by name, or made). The graphs use
the node registry's types and pass ``graph_validate`` as they are; the new
flow's draft can be published right away or changed first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy

from flows.lifecycle import flow_create, flow_name_free
from flows.models import Flow, Reentry
from flows.preview import graph_preview_svg
from leads.models import Segment
from segments.services import segment_create

if TYPE_CHECKING:
    from django.utils.safestring import SafeString
    from django_stubs_ext import StrOrPromise

# Vertical distance between steps on the canvas: a step with its counts is about
# 120 px tall, and the gap below it holds the Yes / No labels and the "+" of the
# connection (the builder's "Tidy up" leaves 70 px between ranks too).
ROW = 190
COLUMN = 280  # horizontal distance between branches


class Canvas:
    """A graph being laid out: steps top to bottom, branches side by side."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []

    def node(
        self, node_id: str, node_type: str, config: dict[str, Any], *, row: int, column: float = 0
    ) -> str:
        self.nodes.append(
            {
                "id": node_id,
                "type": node_type,
                "config": config,
                "position": {"x": int(column * COLUMN), "y": row * ROW},
            }
        )
        return node_id

    def edge(self, source: str, target: str, handle: str = "next") -> None:
        self.edges.append(
            {
                "id": f"{source}-{handle}-{target}",
                "source": source,
                "sourceHandle": handle,
                "target": target,
            }
        )

    def graph(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "edges": self.edges}


def _any_title(*, contains: tuple[str, ...] = (), exactly: tuple[str, ...] = ()) -> dict[str, Any]:
    """Job title contains any of ``contains`` or is one of ``exactly`` (case ignored)."""
    rules: list[dict[str, Any]] = [
        {"field": "job_title", "op": "contains", "value": word} for word in contains
    ]
    if exactly:
        rules.append({"field": "job_title", "op": "in", "value": list(exactly)})
    return {"any": rules}


def _segment(*, name: str, conditions: dict[str, Any], created_by: User | None) -> Segment:
    """The segment with this name, made with these conditions if there is none."""
    segment = Segment.objects.filter(name=name).first()
    if segment is not None:
        return segment
    try:
        return segment_create(
            name=name,
            conditions=conditions,
            description="Made for a flow template.",
            created_by=created_by,
        )
    except IntegrityError:
        # Made by someone else in the meantime.
        return Segment.objects.get(name=name)


def scoring_columns(
    triggers: list[tuple[str, str, dict[str, Any], int, str, str]],
) -> dict[str, Any]:
    """One column per trigger, each adding points: (id, trigger type, trigger
    config, points, category, reason)."""
    canvas = Canvas()
    for column, (node_id, node_type, config, points, category, reason) in enumerate(triggers):
        trigger = canvas.node(node_id, node_type, config, row=0, column=column)
        score = canvas.node(
            f"{node_id}-score",
            "score.adjust",
            {"points": points, "category": category, "reason": reason},
            row=1,
            column=column,
        )
        canvas.edge(trigger, score)
    return canvas.graph()


def email_engagement(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    def email(activity: str) -> dict[str, Any]:
        return {"activity": activity}

    return scoring_columns(
        [
            ("opened", "email.activity", email("opened"), 2, "engagement", "Opened an email"),
            ("clicked", "email.activity", email("clicked"), 5, "engagement", "Clicked an email"),
            ("replied", "email.activity", email("replied"), 10, "engagement", "Replied"),
            (
                "unsubscribed",
                "email.activity",
                email("unsubscribed"),
                -10,
                "engagement",
                "Unsubscribed from email",
            ),
        ]
    )


DECISION_MAKER = _any_title(
    contains=("Chief", "Founder", "President", "Director", "Head of", "VP"),
    exactly=("CEO", "CTO", "CMO", "CFO", "COO", "CRO", "Owner"),
)


def negative_signals(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    # Bounces are the provider's permanent ones: a soft bounce (deferred) records
    # no event at all (leads.services.email_events).
    return scoring_columns(
        [
            (
                "ignored",
                "email.ignored",
                {"count": 3},
                -10,
                "engagement",
                "Did not open the last 3 emails",
            ),
            (
                "unsubscribed",
                "email.activity",
                {"activity": "unsubscribed"},
                -15,
                "engagement",
                "Unsubscribed from email",
            ),
            (
                "bounced",
                "email.activity",
                {"activity": "bounced"},
                -20,
                "engagement",
                "Email bounced: the address takes no mail",
            ),
            (
                "meeting-cancelled",
                "app.event",
                {"event": "Meeting cancelled"},
                -10,
                "engagement",
                "Cancelled a meeting",
            ),
        ]
    )


def b2b_fit(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    canvas = Canvas()
    start = canvas.node("new-lead", "lead.created", {}, row=0)
    checks = [
        (
            "title",
            _any_title(contains=("Marketing", "Sales", "Growth", "Revenue", "Demand")),
            10,
            "Works in marketing or sales",
        ),
        (
            "size",
            {"all": [{"field": "company_size", "op": "between", "value": [50, 1000]}]},
            15,
            "Company of 50 to 1,000 people",
        ),
        ("decision-maker", DECISION_MAKER, 20, "Decision maker"),
    ]
    previous = [(start, "next")]
    for index, (key, conditions, points, reason) in enumerate(checks):
        check = canvas.node(key, "condition", {"conditions": conditions}, row=1 + 2 * index)
        for source, handle in previous:
            canvas.edge(source, check, handle)
        score = canvas.node(
            f"{key}-score",
            "score.adjust",
            {"points": points, "category": "fit", "reason": reason},
            row=2 + 2 * index,
            column=1,
        )
        canvas.edge(check, score, "yes")
        previous = [(score, "next"), (check, "no")]
    return canvas.graph()


def app_activity(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    def event(name: str, **extra: Any) -> dict[str, Any]:
        return {"event": name, **extra}

    return scoring_columns(
        [
            (
                "signed-up",
                "app.event",
                event("Signed up for trial", once_per_lead=True),
                10,
                "engagement",
                "Signed up for a trial",
            ),
            ("logged-in", "app.event", event("Logged in"), 1, "engagement", "Logged in"),
            ("feature", "app.event", event("Used a feature"), 3, "engagement", "Used a feature"),
            (
                "invited",
                "app.event",
                event("Invited a teammate"),
                5,
                "engagement",
                "Invited a teammate",
            ),
        ]
    )


def notify_sales_hot(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    canvas = Canvas()
    hot = canvas.node("hot", "grade.changed", {"grade": "hot"}, row=0)
    open_lead = canvas.node(
        "still-open",
        "condition",
        {
            "conditions": {
                "all": [
                    {"field": "stage", "op": "is_not", "value": "customer"},
                    {"field": "stage", "op": "is_not", "value": "disqualified"},
                ]
            }
        },
        row=1,
    )
    notify = canvas.node(
        "notify",
        "sales.notify",
        {
            "title": "Hot lead: follow up with {lead}",
            "due_in": {"amount": 4, "unit": "hours"},
            "priority": "high",
        },
        row=2,
    )
    done = canvas.node("done", "exit", {}, row=2, column=1)
    canvas.edge(hot, open_lead)
    canvas.edge(open_lead, notify, "yes")
    canvas.edge(open_lead, done, "no")
    return canvas.graph()


DEAD_END_SEGMENT = "Dead-end: no opens in 60 days"
DEAD_END_CONDITIONS = {
    "all": [
        {"activity": "email.opened", "within_days": 60, "count": {"op": "eq", "value": 0}},
        # New leads have had no time to open anything yet.
        {"field": "created_at", "op": "more_than_days_ago", "value": 60},
        {"field": "stage", "op": "is_not", "value": "customer"},
    ]
}
STUDENT_OR_JOB_SEEKER = _any_title(
    contains=(
        "Student",
        "Job seeker",
        "Jobseeker",
        "Seeking",
        "Looking for",
        "Unemployed",
        "Open to work",
    ),
)


def disqualify_dead_ends(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    # A preview draws the graph only: no segment is made for it.
    segment = (
        None
        if preview
        else _segment(name=DEAD_END_SEGMENT, conditions=DEAD_END_CONDITIONS, created_by=created_by)
    )
    canvas = Canvas()
    entered = canvas.node(
        "dead-end", "segment.entered", {"segment": segment.pk if segment else 0}, row=0
    )
    silent = canvas.node(
        "disqualify-silent", "lead.disqualify", {"reason": "No email opens in 60 days"}, row=1
    )
    canvas.edge(entered, silent)
    created = canvas.node("new-lead", "lead.created", {}, row=0, column=1)
    retitled = canvas.node(
        "title-changed", "field.changed", {"field": "job_title"}, row=0, column=2
    )
    who = canvas.node(
        "student-or-job-seeker",
        "condition",
        {"conditions": STUDENT_OR_JOB_SEEKER},
        row=1,
        column=1.5,
    )
    canvas.edge(created, who)
    canvas.edge(retitled, who)
    not_a_buyer = canvas.node(
        "disqualify-not-buyer",
        "lead.disqualify",
        {"reason": "Student or job seeker"},
        row=2,
        column=1,
    )
    done = canvas.node("done", "exit", {}, row=2, column=2)
    canvas.edge(who, not_a_buyer, "yes")
    canvas.edge(who, done, "no")
    return canvas.graph()


def notify_sales_warm(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    """Like ``notify_sales_hot``, from warm on (B2B: sales reaches out earlier)."""
    graph = notify_sales_hot(created_by, preview=preview)
    for node in graph["nodes"]:
        if node["id"] == "hot":
            node["config"] = {"grade": "warm"}
        elif node["id"] == "notify":
            node["config"] = {**node["config"], "title": "Warm lead: reach out to {lead}"}
            node["config"]["priority"] = "normal"
            node["config"]["due_in"] = {"amount": 1, "unit": "days"}
    return graph


def b2c_engagement(created_by: User | None, *, preview: bool = False) -> dict[str, Any]:
    def page(path: str) -> dict[str, Any]:
        return {"url": {"op": "contains", "value": path}}

    return scoring_columns(
        [
            ("pricing", "page.visited", page("/pricing"), 10, "engagement", "Viewed pricing"),
            ("cart", "page.visited", page("/cart"), 15, "engagement", "Viewed the cart"),
            ("form", "form.submitted", {}, 10, "engagement", "Submitted a form"),
            (
                "opened",
                "email.activity",
                {"activity": "opened"},
                1,
                "engagement",
                "Opened an email",
            ),
            (
                "clicked",
                "email.activity",
                {"activity": "clicked"},
                5,
                "engagement",
                "Clicked an email",
            ),
        ]
    )


class GraphBuild(Protocol):
    def __call__(self, created_by: User | None, *, preview: bool = False) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FlowTemplate:
    key: str
    # Shown in the user's language; a flow made from a template keeps the words
    # of whoever made it.
    name: StrOrPromise
    description: StrOrPromise
    build: GraphBuild
    reentry: str = Reentry.ALWAYS
    reentry_days: int | None = None

    def preview_svg(self) -> SafeString:
        """A picture of the template's graph, for the gallery."""
        return _preview_svg(self.key, str(self.name))


@lru_cache(maxsize=64)
def _preview_svg(key: str, title: str) -> SafeString:
    # The graphs are fixed; the title is in the language of the page.
    return graph_preview_svg(FLOW_TEMPLATES[key].build(None, preview=True), title=title)


TEMPLATES: list[FlowTemplate] = [
    FlowTemplate(
        key="email-engagement",
        name=gettext_lazy("Email engagement scoring"),
        description=gettext_lazy(
            "Engagement points for email opens (+2), clicks (+5) and replies (+10); "
            "unsubscribing takes 10 away."
        ),
        build=email_engagement,
    ),
    FlowTemplate(
        key="negative-signals",
        name=gettext_lazy("Negative signals"),
        description=gettext_lazy(
            "Engagement points taken away for 3 emails in a row not opened (-10), "
            "unsubscribing (-15), a bounced email address (-20) and a cancelled meeting "
            "(-10, the app event “Meeting cancelled”; rename it to yours)."
        ),
        build=negative_signals,
    ),
    FlowTemplate(
        key="b2b-fit",
        name=gettext_lazy("B2B fit scoring"),
        description=gettext_lazy(
            "Fit points for each new lead: a marketing or sales job title (+10), "
            "a company of 50 to 1,000 people (+15), a decision maker (+20)."
        ),
        build=b2b_fit,
        reentry=Reentry.ONCE,
    ),
    FlowTemplate(
        key="app-activity",
        name=gettext_lazy("App activity scoring"),
        description=gettext_lazy(
            "Engagement points for app events: trial sign-up (+10, once), log-ins "
            "(+1), feature use (+3), inviting a teammate (+5). Rename the events to yours."
        ),
        build=app_activity,
    ),
    FlowTemplate(
        key="notify-sales-hot",
        name=gettext_lazy("Notify sales on hot lead"),
        description=gettext_lazy(
            "When a lead turns hot and is not a customer or disqualified, a sales "
            "rep gets a high-priority task due in 4 hours; at most once per lead in 30 days."
        ),
        build=notify_sales_hot,
        reentry=Reentry.DAYS,
        reentry_days=30,
    ),
    FlowTemplate(
        key="disqualify-dead-ends",
        name=gettext_lazy("Disqualify dead-end leads"),
        description=gettext_lazy(
            "Disqualifies leads entering the segment “Dead-end: no opens in 60 days” (made "
            "if missing), and students and job seekers by their job title."
        ),
        build=disqualify_dead_ends,
    ),
    # The presets' own (flows/presets.py).
    FlowTemplate(
        key="notify-sales-warm",
        name=gettext_lazy("Notify sales on warm lead"),
        description=gettext_lazy(
            "When a lead turns warm and is not a customer or disqualified, a sales rep "
            "gets a task due in a day; at most once per lead in 30 days."
        ),
        build=notify_sales_warm,
        reentry=Reentry.DAYS,
        reentry_days=30,
    ),
    FlowTemplate(
        key="b2c-engagement",
        name=gettext_lazy("B2C engagement scoring"),
        description=gettext_lazy(
            "Engagement points for pricing views (+10), cart views (+15), forms (+10), "
            "email opens (+1) and clicks (+5)."
        ),
        build=b2c_engagement,
    ),
]
FLOW_TEMPLATES: dict[str, FlowTemplate] = {template.key: template for template in TEMPLATES}


@transaction.atomic
def flow_create_from_template(
    *,
    template: FlowTemplate,
    name: str = "",
    description: str | None = None,
    reentry: str | None = None,
    reentry_days: int | None = None,
    created_by: User | None = None,
) -> Flow:
    """A new flow whose draft is the template's graph; named, described and with
    the re-entry rule of the template unless given (a template's name that a
    flow has already gets a number). A name given that a flow has is refused."""
    return flow_create(
        name=name or flow_name_free(base=str(template.name)),
        description=str(template.description) if description is None else description,
        reentry=reentry or template.reentry,
        reentry_days=reentry_days if reentry else template.reentry_days,
        graph=template.build(created_by),
        created_by=created_by,
    )

"""Action nodes: what a flow does to a lead. Effects are keyed by the step run
(``step:<id>``), so a step executed twice has its effect once."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import translation
from django.utils.translation import gettext, gettext_lazy

from core import prepared
from core.roles import Role
from core.scope import batch_cached, batch_current
from emails.consent import email_settings
from emails.models import EmailTemplate, SendStatus
from emails.rules import send_skip_reason
from emails.sending import email_send_queue
from flows.nodes.base import (
    EMAIL_TEMPLATE,
    NO_CHANGE,
    SALES_USER,
    SCORE_CATEGORY,
    SETTABLE_FIELD,
    STATIC_SEGMENT,
    TAG,
    WOULD_APPLY,
    NodeType,
    SimResult,
    StepContext,
    StepError,
    StepResult,
    duration_text,
    obj,
    register,
    value_text,
)
from flows.nodes.simulation import (
    WHEN,
    LeadState,
    Simulation,
    quoted,
    simulate_end,
    stage_change,
    user_number,
)
from flows.outbound import outbound_url_problem
from flows.rules import (
    BEHIND,
    CLOSED_STAGE,
    SETTABLE_FIELDS,
    STAGE_ORDER,
    STALE_EVENT,
    follow_up_refusal,
    lead_name,
    stage_move_refusal,
    stale_cause_skip,
    task_due,
    task_title,
)
from leads.models import (
    Event,
    Lead,
    Segment,
    SegmentKind,
    Stage,
    Task,
    TaskPriority,
    TaskStatus,
)
from leads.selectors import user_language
from leads.services.events import event_derive
from leads.services.fields import (
    FieldValueError,
    custom_definitions,
    custom_value_clean,
)
from leads.services.leads import lead_tags_change, lead_update
from leads.services.outcomes import (
    DEFAULT_CURRENCY,
    MAX_VALUE,
    opportunity_open,
    stage_after_opening,
)
from leads.services.tasks import notification_add_once, task_open_once
from leads.services.users import integration_settings
from scoring.models import ScoreCategory, ScoreSource, ScoringSettings
from scoring.rules import ENGAGEMENT, FIT, counted_points, grades_for, stage_after_score
from scoring.services import score_adjust, score_category
from segments.services import segment_add_leads, segment_remove_leads

__all__ = ["SETTABLE_FIELDS", "STAGE_ORDER", "sales_round_robin", "slack_target"]


def _key(ctx: StepContext) -> str:
    return f"step:{ctx.step.pk}"


def _category_exists(config: dict[str, Any]) -> dict[str, list[str]]:
    if not ScoreCategory.objects.filter(key=config.get("category")).exists():
        return {
            "category": [
                gettext("The score category “%(key)s” does not exist: choose another.")
                % {"key": config.get("category")}
            ]
        }
    return {}


def _adjust_score(ctx: StepContext) -> StepResult:
    try:
        category = score_category(ctx.config["category"])
    except ScoreCategory.DoesNotExist as exc:
        raise StepError(str(exc)) from exc
    change = score_adjust(
        lead=ctx.lead,
        delta=ctx.config["points"],
        category=category,
        reason=ctx.config["reason"],
        source=ScoreSource.FLOW,
        # With ``within``, the key is the step's, given by the statement.
        source_key=_key(ctx) if ctx.within is None else "",
        cause=ctx.trigger_event,
        within=ctx.within,
    )
    return StepResult(output={"score_change": change.pk if change else None})


def _simulate_score(sim: Simulation, node: dict[str, Any]) -> SimResult:
    # What score_adjust would do: the points a cap lets count, the totals, the
    # grades of both axes, the MQL stage move (the same rules it calls).
    state, settings, config = sim.state, sim.settings, node["config"]
    asked, key = config["points"], config["category"]
    points = counted_points(
        asked=asked,
        points=state.categories.get(key, 0),
        total=state.score,
        cap=score_category(key).cap,
        total_cap=settings.total_cap,
    )
    before = state.score
    rating_before = _rating(state, settings)
    state.score += points
    state.categories[key] = state.categories.get(key, 0) + points
    state.changed.update({"score", f"score.{key}"})
    changes = [gettext("score %(before)s → %(after)s") % {"before": before, "after": state.score}]
    if points != asked:
        changes.append(gettext("%(points)+d capped") % {"points": asked - points})
    grades = grades_for(
        total=state.score,
        fit=state.categories.get(FIT, 0),
        engagement=state.categories.get(ENGAGEMENT, 0),
        stage=state.stage,
        settings=settings,
    )
    if grades.grade != state.grade:
        changes.append(
            gettext("grade %(before)s → %(after)s") % {"before": state.grade, "after": grades.grade}
        )
        state.grade = grades.grade
        state.changed.add("grade")
    rating = grades.fit_grade + grades.engagement_grade
    if rating != rating_before:
        changes.append(f"{rating_before} → {rating}")
    moved = stage_after_score(
        before=before, after=state.score, stage=state.stage, settings=settings
    )
    if moved is not None:
        changes.append(stage_change(Stage(state.stage).label, Stage(moved).label))
        state.stage = moved
        state.changed.add("stage")
    return SimResult(WOULD_APPLY, f"{sim.summary(node)} ({', '.join(changes)})")


def _rating(state: LeadState, settings: ScoringSettings) -> str:
    """The simulated lead's fit and engagement badge ("A1" to "D4")."""
    grades = grades_for(
        total=state.score,
        fit=state.categories.get(FIT, 0),
        engagement=state.categories.get(ENGAGEMENT, 0),
        stage=state.stage,
        settings=settings,
    )
    return grades.fit_grade + grades.engagement_grade


register(
    NodeType(
        key="score.adjust",
        kind="action",
        label=gettext_lazy("Adjust lead score"),
        description=gettext_lazy(
            "Adds or takes away points in a category, with the reason shown on the lead's profile."
        ),
        icon="award",
        schema=obj(
            {
                "points": {
                    "type": "integer",
                    "minimum": -1000,
                    "maximum": 1000,
                    "not": {"const": 0},
                },
                "category": {"type": "string", "default": "engagement"},
                "reason": {"type": "string", "minLength": 1, "maxLength": 255},
            },
            ("points", "category", "reason"),
        ),
        execute=_adjust_score,
        simulate=_simulate_score,
        check=_category_exists,
        summary=lambda c, n: f"{c['points']:+d} {n.categories[c['category']]}: {c['reason']}",
        pickers={"category": SCORE_CATEGORY},
        # Its one check (the category) comes before its first write.
        isolated=False,
        opens=True,
    )
)


# The active sales rep with the fewest open tasks (ties: the lowest id). Plain
# SQL that both backends run: on the hot path the ORM took longer to build this
# than the database to answer it.
_NEXT_REP = (
    f"SELECT u.id FROM {User._meta.db_table} u WHERE u.is_active AND EXISTS "  # noqa: S608
    f"(SELECT 1 FROM {User.groups.through._meta.db_table} ug "
    f"JOIN {Group._meta.db_table} g ON g.id = ug.group_id "
    "WHERE ug.user_id = u.id AND g.name = %s) "
    f"ORDER BY (SELECT count(*) FROM {Task._meta.db_table} t "
    "WHERE t.assignee_id = u.id AND t.status = %s), u.id LIMIT 1"
)


def sales_round_robin() -> User | None:
    """The active sales rep with the fewest open tasks (ties: the lowest id)."""
    params = [Role.SALES.value, TaskStatus.OPEN.value]
    if prepared.enabled():
        rows = prepared.fetch(_NEXT_REP, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_NEXT_REP, params)
            rows = cursor.fetchall()
    return _active_user(rows[0][0]) if rows else None


def _active_users() -> dict[int, User]:
    return {u.pk: u for u in User.objects.filter(is_active=True).select_related("preference")}


def _active_user(pk: int) -> User | None:
    """The active user ``pk``, with the preference their language is in: in a
    worker's batch, from the active users read once for it."""
    if batch_current():
        user = batch_cached("active_users", _active_users).get(pk)
        if user is not None:
            return user
    return User.objects.filter(pk=pk, is_active=True).select_related("preference").first()


def _assignee(ctx: StepContext) -> User | None:
    if ctx.lead.owner_id:
        return _active_user(ctx.lead.owner_id)
    rep = sales_round_robin()
    if rep is not None:
        lead_update(lead=ctx.lead, changes={"owner": rep}, cause=ctx.trigger_event)
    return rep


def _stale_skip(event: Event | None, taken_at: dt.datetime) -> str | None:
    """Why a step that calls on people skips this event (flows.rules)."""
    return stale_cause_skip(
        occurred_at=event.occurred_at if event is not None else None,
        taken_at=taken_at,
        max_age_days=settings.FLOW_STALE_EVENT_DAYS,
    )


def _notify_sales(ctx: StepContext) -> StepResult:
    from flows.services import delivery_create

    event = ctx.trigger_event
    skipped = _stale_skip(event, ctx.enrollment.created_at or ctx.now)
    if skipped is not None and event is not None:
        # No owner assigned, no task, no message: the step log says why.
        return StepResult(
            output={
                "task": None,
                "skipped": STALE_EVENT,
                "occurred_at": event.occurred_at.isoformat(),
                "days": settings.FLOW_STALE_EVENT_DAYS,
                "reason": skipped,
            }
        )
    config = ctx.config
    refused = follow_up_refusal(stage=ctx.lead.stage)
    if refused is not None:
        # No task, no notification, no owner assigned: the log says why.
        return StepResult(output={"task": None, "skipped": CLOSED_STAGE, "stage": ctx.lead.stage})
    rep = _assignee(ctx)
    due = task_due(due_in=config.get("due_in"), now=ctx.now)
    lead = ctx.lead
    name = lead_name(
        first_name=lead.first_name, last_name=lead.last_name, email=lead.email, lead_id=lead.pk
    )
    title = task_title(template=config["title"], name=name)
    task, created = task_open_once(
        key=_key(ctx),
        lead=ctx.lead,
        assignee=rep,
        title=title,
        due_at=due,
        priority=config.get("priority", TaskPriority.NORMAL),
    )
    if created:
        event_derive(
            lead=ctx.lead,
            type="task.created",
            name=task.priority,
            properties={
                "task_id": task.pk,
                "title": task.title,
                "assignee": rep.pk if rep else None,
                "due_at": due.isoformat() if due else None,
                "priority": task.priority,
            },
            key=f"task.created:{task.pk}",
            depth=ctx.trigger_event.depth + 1 if ctx.trigger_event is not None else 0,
        )
    output: dict[str, Any] = {"task": task.pk, "assignee": rep.pk if rep else None}
    if rep is not None:
        # Written in the rep's language: they read it, not whoever runs the flow.
        with translation.override(user_language(rep) or settings.LANGUAGE_CODE):
            message = gettext("New task: %(title)s") % {"title": title}
            notification_add_once(key=_key(ctx), user=rep, lead=ctx.lead, message=message)
            if config.get("email", True) and rep.email:
                delivery_create(
                    kind="email",
                    key=f"{_key(ctx)}:email",
                    step=ctx.step,
                    target=rep.email,
                    payload={"subject": f"Leadflow: {title}", "body": _task_mail(task, ctx.lead)},
                )
    slack = slack_target(config)
    if slack:
        delivery_create(
            kind="slack",
            key=f"{_key(ctx)}:slack",
            step=ctx.step,
            target=slack,
            payload={"text": f"{title} ({name})"},
        )
    return StepResult(output=output)


def _simulate_notify(sim: Simulation, node: dict[str, Any]) -> SimResult:
    state, config = sim.state, node["config"]
    skipped = _stale_skip(sim.event, sim.started_at)
    if skipped is not None:
        return SimResult(NO_CHANGE, skipped)
    refused = follow_up_refusal(stage=state.stage)
    if refused is not None:
        return SimResult(NO_CHANGE, refused)
    if state.owner_id is not None:
        owner = sim.user(state.owner_id)
        rep = owner if owner is not None and owner.is_active else None
        who = (
            gettext("%(name)s (the owner)") % {"name": sim.user_name(rep.pk)}
            if rep is not None
            else gettext("nobody (the owner, %(name)s, is inactive)")
            % {"name": sim.user_name(state.owner_id)}
        )
    else:
        rep = sales_round_robin()
        if rep is not None:
            sim.remember(rep)
            state.owner_id = rep.pk
            state.changed.add("owner")
            who = gettext("the next sales rep in turn: %(name)s, who becomes the owner") % {
                "name": sim.user_name(rep.pk)
            }
        else:
            who = gettext("nobody (no lead owner and no active sales rep)")
    name = lead_name(
        first_name=state.fields["first_name"],
        last_name=state.fields["last_name"],
        email=sim.lead.email,
        lead_id=sim.lead.pk,
    )
    effect = gettext("task '%(title)s' for %(who)s") % {
        "title": task_title(template=config["title"], name=name),
        "who": who,
    }
    due = task_due(due_in=config.get("due_in"), now=state.now)
    if due is not None:
        effect += gettext(", due in %(duration)s (%(date)s)") % {
            "duration": duration_text(config["due_in"]["amount"], config["due_in"]["unit"]),
            "date": f"{due:{WHEN}}",
        }
    if config.get("priority", "normal") != "normal":
        priority = config["priority"]
        if priority in TaskPriority.values:
            priority = str(TaskPriority(priority).label).lower()
        effect += gettext(", %(priority)s priority") % {"priority": priority}
    if rep is not None:
        effect += gettext("; in-app notification")
        if config.get("email", True) and rep.email:
            effect += gettext(" and email to %(email)s") % {"email": rep.email}
    slack = slack_target(config)
    if slack:
        effect += gettext("; Slack message to %(host)s") % {"host": urlsplit(slack).hostname}
    elif config.get("slack"):
        effect += gettext("; no Slack message (no Slack URL in Settings → Integrations)")
    return SimResult(WOULD_APPLY, effect)


def slack_target(config: dict[str, Any]) -> str:
    """Where "Notify sales" posts: the node's own URL, else, when the node asks to
    post, the team's URL from Settings → Integrations (blank: not connected)."""
    if config.get("slack_webhook"):
        return str(config["slack_webhook"])
    if config.get("slack"):
        return integration_settings().slack_webhook_url
    return ""


def _url_allowed(path: str) -> Any:
    """A check that the URL at ``path`` is a target Leadflow may post to."""

    def check(config: dict[str, Any]) -> dict[str, list[str]]:
        problem = outbound_url_problem(config[path]) if config.get(path) else None
        return {path: [problem]} if problem else {}

    return check


def _task_mail(task: Task, lead: Lead) -> str:
    url = f"{settings.SITE_URL}/leads/{lead.pk}/"
    if not task.due_at:
        return gettext("%(title)s\n\nLead: %(lead)s\n%(url)s\n") % {
            "title": task.title,
            "lead": lead.full_name or lead.email,
            "url": url,
        }
    return gettext(
        "%(title)s\n\nLead: %(lead)s <%(email)s>\nCompany: %(company)s\n"
        "Score: %(score)s (%(grade)s)\nDue: %(due)s UTC\n\n%(url)s\n"
    ) % {
        "title": task.title,
        "lead": lead.full_name or lead.email,
        "email": lead.email or "",
        "company": lead.company_name,
        "score": lead.score,
        "grade": lead.grade,
        "due": f"{task.due_at:%Y-%m-%d %H:%M}",
        "url": url,
    }


register(
    NodeType(
        key="sales.notify",
        kind="action",
        label=gettext_lazy("Notify sales"),
        description=gettext_lazy(
            "Creates a task for the lead's owner (or the next sales rep in turn, "
            "who becomes the owner), notifies them in the app and by email, and optionally "
            "posts to Slack (the team's channel from Settings → Integrations, or a URL "
            "of its own). Customers, lost and disqualified leads get no task."
        ),
        icon="bell",
        schema=obj(
            {
                "title": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "default": "Follow up with {lead}",
                },
                "due_in": obj(
                    {
                        "amount": {"type": "integer", "minimum": 1, "maximum": 1000},
                        "unit": {"type": "string", "enum": ["hours", "days"]},
                    },
                    ("amount", "unit"),
                ),
                "priority": {
                    "type": "string",
                    "enum": list(TaskPriority.values),
                    "default": "normal",
                },
                "email": {"type": "boolean", "default": True},
                "slack": {"type": "boolean", "default": False},
                # An incoming-webhook URL is the credential itself: whoever has
                # it can post to the channel.
                "slack_webhook": {
                    "type": "string",
                    "format": "uri",
                    "pattern": "^https://",
                    "maxLength": 500,
                    "writeOnly": True,
                },
            },
            ("title",),
        ),
        execute=_notify_sales,
        check=_url_allowed("slack_webhook"),
        simulate=_simulate_notify,
        summary=lambda c, n: c["title"],
    )
)


def _assign_owner(ctx: StepContext) -> StepResult:
    if ctx.config.get("user"):
        rep = User.objects.filter(pk=ctx.config["user"], is_active=True).first()
    else:
        rep = sales_round_robin()
    if rep is not None:
        lead_update(lead=ctx.lead, changes={"owner": rep}, cause=ctx.trigger_event)
    return StepResult(output={"owner": rep.pk if rep else None})


def _simulate_assign(sim: Simulation, node: dict[str, Any]) -> SimResult:
    state, config = sim.state, node["config"]
    if config.get("user"):
        user = sim.user(config["user"])
        rep = user if user is not None and user.is_active else None
        missing = gettext("%(user)s is not an active user") % {"user": user_number(config["user"])}
    else:
        rep = sales_round_robin()
        missing = gettext("no active sales rep")
    current = sim.user_name(state.owner_id)
    if rep is None:
        stays = gettext("%(problem)s; the owner stays %(owner)s")
        return SimResult(NO_CHANGE, stays % {"problem": missing, "owner": current})
    sim.remember(rep)
    if rep.pk == state.owner_id:
        return SimResult(NO_CHANGE, gettext("the owner is already %(owner)s") % {"owner": current})
    state.owner_id = rep.pk
    state.changed.add("owner")
    turn = "" if config.get("user") else gettext(" (the next sales rep in turn)")
    change = gettext("owner: %(before)s → %(after)s") % {
        "before": current,
        "after": sim.user_name(rep.pk),
    }
    return SimResult(WOULD_APPLY, f"{change}{turn}")


def _user_exists(config: dict[str, Any]) -> dict[str, list[str]]:
    if config.get("user") and not User.objects.filter(pk=config["user"], is_active=True).exists():
        return {
            "user": [
                gettext(
                    "The sales rep chosen (user %(id)s) is not active any more: choose another."
                )
                % {"id": config["user"]}
            ]
        }
    return {}


register(
    NodeType(
        key="owner.assign",
        kind="action",
        label=gettext_lazy("Assign owner"),
        description=gettext_lazy("Makes a user the lead's owner, or the next sales rep in turn."),
        icon="user-check",
        schema=obj({"user": {"type": "integer", "minimum": 1}}),
        execute=_assign_owner,
        simulate=_simulate_assign,
        check=_user_exists,
        summary=lambda c, n: (
            gettext("Assign to %(name)s") % {"name": n.users[c["user"]]}
            if c.get("user")
            else gettext("Assign to the next sales rep")
        ),
        pickers={"user": SALES_USER},
    )
)


def _set_field(ctx: StepContext) -> StepResult:
    field, value = ctx.config["field"], ctx.config["value"]
    if field.startswith("custom."):
        definition = custom_definitions()[field[7:]]
        lead_update(
            lead=ctx.lead,
            custom={definition.key: custom_value_clean(definition, value, lenient=True)},
            cause=ctx.trigger_event,
        )
    else:
        lead_update(lead=ctx.lead, changes={field: value}, cause=ctx.trigger_event)
    return StepResult()


def _simulate_set_field(sim: Simulation, node: dict[str, Any]) -> SimResult:
    state, name, value = sim.state, node["config"]["field"], node["config"]["value"]
    label = sim.field_label(name)
    if name.startswith("custom."):
        key = name[7:]
        new = custom_value_clean(sim.definitions[key], value, lenient=True)
        old = state.custom.get(key)
        if new is None:
            state.custom.pop(key, None)
        else:
            state.custom[key] = new
    else:
        old, new = state.fields.get(name, getattr(sim.lead, name)), value
        state.fields[name] = new
    if old == new:
        already = gettext("%(field)s is already %(value)s")
        return SimResult(NO_CHANGE, already % {"field": label, "value": quoted(new)})
    state.changed.add(name)
    return SimResult(WOULD_APPLY, f"{label}: {quoted(old)} → {quoted(new)}")


def _field_problems(config: dict[str, Any]) -> dict[str, list[str]]:
    field, value = config.get("field", ""), config.get("value")
    if field.startswith("custom."):
        definition = custom_definitions().get(field[7:])
        if definition is None:
            return {
                "field": [
                    gettext("The custom field “%(key)s” does not exist: choose another field.")
                    % {"key": field[7:]}
                ]
            }
        try:
            custom_value_clean(definition, value, lenient=True)
        except FieldValueError as exc:
            return {"value": [str(exc)]}
        return {}
    if field not in SETTABLE_FIELDS:
        return {
            "field": [
                gettext("Expected one of: %(fields)s, or custom.<key>.")
                % {"fields": ", ".join(SETTABLE_FIELDS)}
            ]
        }
    if field == "company_size":
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31
        return {} if ok else {"value": [gettext("Expected a whole number.")]}
    limit = Lead._meta.get_field(field).max_length  # type: ignore[union-attr]
    if not isinstance(value, str) or (limit and len(value) > limit):
        return {
            "value": [gettext("Expected text of at most %(limit)s characters.") % {"limit": limit}]
        }
    return {}


register(
    NodeType(
        key="field.set",
        kind="action",
        label=gettext_lazy("Set field"),
        description=gettext_lazy("Sets a lead field (standard or custom) to a value."),
        icon="edit-3",
        schema=obj(
            {
                "field": {"type": "string", "minLength": 1},
                "value": {"type": ["string", "number", "boolean"]},
            },
            ("field", "value"),
        ),
        execute=_set_field,
        simulate=_simulate_set_field,
        check=_field_problems,
        summary=lambda c, n: (
            gettext("Set %(field)s to %(value)s")
            % {"field": n.field_label(c["field"]), "value": value_text(c["value"])}
            if c["value"] != ""
            else gettext("Clear %(field)s") % {"field": n.field_label(c["field"])}
        ),
        pickers={"field": SETTABLE_FIELD},
    )
)


def _tags_action(add: bool) -> Any:
    def execute(ctx: StepContext) -> StepResult:
        changed = lead_tags_change(
            lead=ctx.lead,
            add=[ctx.config["tag"]] if add else [],
            remove=[] if add else [ctx.config["tag"]],
            cause=ctx.trigger_event,
            depth=(ctx.trigger_event.depth + 1) if ctx.trigger_event else 0,
        )
        return StepResult(output={"changed": bool(changed)})

    return execute


def _tags_simulation(add: bool) -> Any:
    def simulate(sim: Simulation, node: dict[str, Any]) -> SimResult:
        state, tag = sim.state, node["config"]["tag"].strip()
        if add:
            if tag in state.tags:
                return SimResult(NO_CHANGE, gettext("already has tag %(tag)s") % {"tag": tag})
            state.tags.add(tag)
            effect = gettext("add tag %(tag)s") % {"tag": tag}
        else:
            if tag not in state.tags:
                return SimResult(NO_CHANGE, gettext("has no tag %(tag)s to remove") % {"tag": tag})
            state.tags.discard(tag)
            effect = gettext("remove tag %(tag)s") % {"tag": tag}
        state.changed.add("tags")
        return SimResult(WOULD_APPLY, effect)

    return simulate


def _tag_summary(add: bool) -> Any:
    if add:
        return lambda c, n: gettext("Add tag %(tag)s") % {"tag": c["tag"]}
    return lambda c, n: gettext("Remove tag %(tag)s") % {"tag": c["tag"]}


for _node_key, _label, _description, _adding in (
    ("tag.add", gettext_lazy("Add tag"), gettext_lazy("Adds a tag."), True),
    ("tag.remove", gettext_lazy("Remove tag"), gettext_lazy("Removes a tag."), False),
):
    register(
        NodeType(
            key=_node_key,
            kind="action",
            label=_label,
            description=_description,
            icon="tag",
            schema=obj({"tag": {"type": "string", "minLength": 1, "maxLength": 100}}, ("tag",)),
            execute=_tags_action(_adding),
            simulate=_tags_simulation(_adding),
            summary=_tag_summary(_adding),
            pickers={"tag": TAG},
        )
    )


def _change_stage(ctx: StepContext) -> StepResult:
    stage = ctx.config["stage"]
    refused = stage_move_refusal(
        current=ctx.lead.stage, target=stage, forward_only=ctx.config.get("forward_only", True)
    )
    if refused is not None:
        return StepResult(output={"changed": False})
    lead_update(lead=ctx.lead, changes={"stage": stage}, cause=ctx.trigger_event)
    return StepResult(output={"changed": True})


def _simulate_stage(sim: Simulation, node: dict[str, Any]) -> SimResult:
    state, stage = sim.state, node["config"]["stage"]
    current = state.stage
    label, current_label = Stage(stage).label, Stage(current).label
    if current == stage:
        return SimResult(NO_CHANGE, gettext("stage is already %(stage)s") % {"stage": label})
    refused = stage_move_refusal(
        current=current, target=stage, forward_only=node["config"].get("forward_only", True)
    )
    if refused == BEHIND:
        behind = gettext("stage stays %(current)s: forward only, and %(stage)s is behind it")
        return SimResult(NO_CHANGE, behind % {"current": current_label, "stage": label})
    if refused is not None:
        stays = gettext("stage stays %(current)s: forward only")
        return SimResult(NO_CHANGE, stays % {"current": current_label})
    state.stage = stage
    state.changed.add("stage")
    return SimResult(WOULD_APPLY, stage_change(current_label, label))


register(
    NodeType(
        key="stage.change",
        kind="action",
        label=gettext_lazy("Change lifecycle stage"),
        description=gettext_lazy("Moves the lead to a stage; with 'forward only', never back."),
        icon="flag",
        schema=obj(
            {
                "stage": {"type": "string", "enum": list(Stage.values)},
                "forward_only": {"type": "boolean", "default": True},
            },
            ("stage",),
        ),
        execute=_change_stage,
        simulate=_simulate_stage,
        summary=lambda c, n: (
            gettext("Move to stage %(stage)s") % {"stage": Stage(c["stage"]).label}
            + ("" if c.get("forward_only", True) else gettext(", also backwards"))
        ),
    )
)


def _open_opportunity(ctx: StepContext) -> StepResult:
    config = ctx.config
    try:
        opportunity = opportunity_open(
            lead=ctx.lead,
            value=config["value"],
            currency=config.get("currency", DEFAULT_CURRENCY),
            name=config.get("name", ""),
            user=None,
            # When the trigger happened: history replayed later is dated right.
            opened_at=ctx.trigger_event.occurred_at if ctx.trigger_event else ctx.now,
            source_key=_key(ctx),
            cause=ctx.trigger_event,
        )
    except ValidationError as exc:
        raise StepError(" ".join(exc.messages)) from exc
    return StepResult(output={"opportunity": opportunity.pk})


def _opportunity_words(config: dict[str, Any]) -> str:
    amount = value_text(config["value"])
    currency = config.get("currency", DEFAULT_CURRENCY)
    name = config.get("name", "")
    deal = f"{amount} {currency}"
    return f"{deal} ({name})" if name else deal


def _simulate_opportunity(sim: Simulation, node: dict[str, Any]) -> SimResult:
    state = sim.state
    deal = _opportunity_words(node["config"])
    moved = stage_after_opening(state.stage)
    if moved is None:
        stays = gettext("opens an opportunity of %(deal)s; stage stays %(stage)s")
        return SimResult(WOULD_APPLY, stays % {"deal": deal, "stage": Stage(state.stage).label})
    before = Stage(state.stage).label
    state.stage = moved
    state.changed.add("stage")
    opened = gettext("opens an opportunity of %(deal)s") % {"deal": deal}
    return SimResult(WOULD_APPLY, f"{opened}; {stage_change(before, Stage(moved).label)}")


register(
    NodeType(
        key="opportunity.open",
        kind="action",
        label=gettext_lazy("Open opportunity"),
        description=gettext_lazy(
            "Opens a deal with the lead (value, currency) and makes it an opportunity, "
            "unless it is a customer. Once per step."
        ),
        icon="briefcase",
        schema=obj(
            {
                "value": {"type": "number", "minimum": 0, "maximum": float(MAX_VALUE)},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "default": "EUR"},
                "name": {"type": "string", "maxLength": 200},
            },
            ("value",),
        ),
        execute=_open_opportunity,
        simulate=_simulate_opportunity,
        summary=lambda c, n: (
            gettext("Open opportunity: %(deal)s") % {"deal": _opportunity_words(c)}
        ),
    )
)


def _disqualify(ctx: StepContext) -> StepResult:
    lead_update(
        lead=ctx.lead,
        changes={"stage": Stage.DISQUALIFIED},
        raw_traits=None,
        custom=None,
        cause=ctx.trigger_event,
    )
    return StepResult(output={"reason": ctx.config["reason"]})


def _simulate_disqualify(sim: Simulation, node: dict[str, Any]) -> SimResult:
    state, reason = sim.state, node["config"]["reason"]
    if state.stage == Stage.DISQUALIFIED:
        already = gettext("already disqualified (reason: %(reason)s)")
        return SimResult(NO_CHANGE, already % {"reason": reason})
    before = Stage(state.stage).label
    state.stage = Stage.DISQUALIFIED
    state.changed.add("stage")
    change = stage_change(before, Stage.DISQUALIFIED.label)
    return SimResult(WOULD_APPLY, f"{change} ({reason})")


register(
    NodeType(
        key="lead.disqualify",
        kind="action",
        label=gettext_lazy("Disqualify"),
        description=gettext_lazy("Sets the stage to disqualified, with a reason."),
        icon="x-circle",
        schema=obj({"reason": {"type": "string", "minLength": 1, "maxLength": 255}}, ("reason",)),
        execute=_disqualify,
        simulate=_simulate_disqualify,
        summary=lambda c, n: gettext("Disqualify: %(reason)s") % {"reason": c["reason"]},
    )
)


def _static_segment(config: dict[str, Any]) -> dict[str, list[str]]:
    segment = Segment.objects.filter(pk=config.get("segment") or 0).first()
    if segment is None:
        return {"segment": [gettext("No segment %(id)s.") % {"id": config.get("segment")}]}
    if segment.kind != SegmentKind.STATIC:
        return {"segment": [gettext("Only static segments take leads by hand.")]}
    return {}


def _segment_move(ctx: StepContext, add: bool) -> StepResult:
    segment = Segment.objects.get(pk=ctx.config["segment"])
    if add:
        changed = segment_add_leads(segment=segment, lead_ids=[ctx.lead.pk])
    else:
        changed = segment_remove_leads(segment=segment, lead_ids=[ctx.lead.pk])
    return StepResult(output={"changed": changed})


def _segment_action(add: bool) -> Any:
    def execute(ctx: StepContext) -> StepResult:
        return _segment_move(ctx, add)

    return execute


def _segment_simulation(add: bool) -> Any:
    def simulate(sim: Simulation, node: dict[str, Any]) -> SimResult:
        state, segment = sim.state, node["config"]["segment"]
        name = sim.names.segments.get(segment, f"#{segment}")
        if add:
            if segment in state.segments:
                already = gettext("already in static segment %(segment)s")
                return SimResult(NO_CHANGE, already % {"segment": name})
            state.segments.add(segment)
            effect = gettext("add to static segment %(segment)s") % {"segment": name}
        else:
            if segment not in state.segments:
                absent = gettext("not in static segment %(segment)s; nothing to remove")
                return SimResult(NO_CHANGE, absent % {"segment": name})
            state.segments.discard(segment)
            effect = gettext("remove from static segment %(segment)s") % {"segment": name}
        state.changed.add(f"segment:{segment}")
        return SimResult(WOULD_APPLY, effect)

    return simulate


def _segment_summary(add: bool) -> Any:
    if add:
        return lambda c, n: gettext("Add to %(segment)s") % {"segment": n.segments[c["segment"]]}
    return lambda c, n: gettext("Remove from %(segment)s") % {"segment": n.segments[c["segment"]]}


for _node_key, _label, _description, _add in (
    (
        "segment.add",
        gettext_lazy("Add to static segment"),
        gettext_lazy("Adds the lead to a static segment."),
        True,
    ),
    (
        "segment.remove",
        gettext_lazy("Remove from static segment"),
        gettext_lazy("Removes the lead from a static segment."),
        False,
    ),
):
    register(
        NodeType(
            key=_node_key,
            kind="action",
            label=_label,
            description=_description,
            icon="list",
            schema=obj({"segment": {"type": "integer", "minimum": 1}}, ("segment",)),
            execute=_segment_action(_add),
            simulate=_segment_simulation(_add),
            check=_static_segment,
            summary=_segment_summary(_add),
            pickers={"segment": STATIC_SEGMENT},
        )
    )


def _email_template(config: dict[str, Any]) -> EmailTemplate | None:
    return EmailTemplate.objects.filter(pk=config.get("template") or 0).first()


def _template_exists(config: dict[str, Any]) -> dict[str, list[str]]:
    if _email_template(config) is None:
        return {"template": [gettext("Choose an email template that exists.")]}
    return {}


def _send_email(ctx: StepContext) -> StepResult:
    template = _email_template(ctx.config)
    if template is None:
        raise StepError(gettext("The email template of this step was deleted."))
    send = email_send_queue(
        key=_key(ctx),
        lead=ctx.lead,
        template=template,
        subject_override=ctx.config.get("subject", ""),
        flow_id=ctx.enrollment.flow_id,
        node_id=ctx.step.node_id,
    )
    output: dict[str, Any] = {"email": send.pk}
    if send.status == SendStatus.SKIPPED:
        # Not sent, and the flow goes on: the step log says why.
        output["skipped"] = gettext("skipped: %(reason)s") % {"reason": send.reason}
    return StepResult(output=output)


def _simulate_send_email(sim: Simulation, node: dict[str, Any]) -> SimResult:
    template = _email_template(node["config"])
    if template is None:
        return SimResult(NO_CHANGE, gettext("no email: its template was deleted"))
    reason = send_skip_reason(
        lead=sim.lead,
        kind=template.kind,
        require_double_opt_in=email_settings().require_double_opt_in,
    )
    if reason is not None:
        return SimResult(NO_CHANGE, gettext("skipped: %(reason)s") % {"reason": reason})
    return SimResult(
        WOULD_APPLY,
        gettext("email '%(name)s' to %(email)s (not sent)")
        % {"name": template.name, "email": sim.lead.email},
    )


register(
    NodeType(
        key="email.send",
        kind="action",
        label=gettext_lazy("Send email"),
        description=gettext_lazy(
            "Sends the lead an email made from a template. Marketing email goes only "
            "to leads who may receive it (consent, not unsubscribed, not bounced); "
            "the others are skipped and the flow goes on. Emails wait for the send "
            "window, the sending rate and the lead's limit of emails; none is dropped."
        ),
        icon="mail",
        schema=obj(
            {
                "template": {"type": "integer", "minimum": 1},
                "subject": {"type": "string", "maxLength": 300},
            },
            ("template",),
        ),
        execute=_send_email,
        simulate=_simulate_send_email,
        check=_template_exists,
        summary=lambda c, n: n.email_templates[c["template"]],
        pickers={"template": EMAIL_TEMPLATE},
    )
)


def _webhook(ctx: StepContext) -> StepResult:
    from flows.services import delivery_create

    delivery_create(
        kind="webhook",
        key=_key(ctx),
        step=ctx.step,
        target=ctx.config["url"],
        payload={
            "secret": ctx.config.get("secret", ""),
            "body": _webhook_body(ctx),
        },
        blocking=True,
    )
    return StepResult(wait_for_delivery=True)


def _webhook_body(ctx: StepContext) -> dict[str, Any]:
    from flows.services import lead_payload

    event = ctx.trigger_event
    return {
        "lead": lead_payload(ctx.lead),
        "event": {
            "id": event.pk,
            "type": event.type,
            "name": event.name,
            "properties": event.properties,
            "occurred_at": event.occurred_at.isoformat(),
        }
        if event is not None
        else None,
        "flow": {"id": ctx.enrollment.flow_id, "enrollment": ctx.enrollment.pk},
    }


def _simulate_webhook(sim: Simulation, node: dict[str, Any]) -> SimResult:
    # The host only, as on the canvas: the rest of the URL often carries a token.
    url = node["config"]["url"]
    host = urlsplit(url).hostname or url
    return SimResult(WOULD_APPLY, gettext("POST to %(host)s (not sent)") % {"host": host})


register(
    NodeType(
        key="webhook.send",
        kind="action",
        label=gettext_lazy("Send webhook"),
        description=gettext_lazy(
            "POSTs the lead and the triggering event as JSON to a URL, signed "
            "with HMAC-SHA256 (X-Leadflow-Signature), retried with backoff."
        ),
        icon="send",
        schema=obj(
            {
                "url": {"type": "string", "pattern": "^https?://", "maxLength": 2000},
                "secret": {"type": "string", "maxLength": 200, "writeOnly": True},
            },
            ("url",),
        ),
        execute=_webhook,
        check=_url_allowed("url"),
        simulate=_simulate_webhook,
        # The host only: the rest of a webhook URL often carries a token.
        summary=lambda c, n: (
            gettext("POST to %(host)s") % {"host": urlsplit(c["url"]).hostname or c["url"]}
        ),
    )
)

register(
    NodeType(
        key="flow.end",
        kind="action",
        label=gettext_lazy("End flow"),
        description=gettext_lazy("Ends the flow here for this lead."),
        icon="square",
        schema=obj({}),
        outputs=(),
        execute=lambda ctx: StepResult(follow=(), end=True),
        writes=False,
        simulate=simulate_end,
        summary=lambda c, n: gettext("End of the flow"),
    )
)

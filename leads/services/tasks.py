"""Writes to tasks and notifications: open a follow-up once per key, complete,
snooze and reassign a task; notify once per key, mark notifications read. Every
change is a conditional UPDATE, so two people acting on the same task at once
cannot undo each other's change."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from core import prepared
from core.roles import Role
from leads.models import Lead, Notification, Stage, Task, TaskStatus
from leads.people import person_name
from leads.roles import user_role
from leads.selectors import user_language

logger = logging.getLogger(__name__)

# Who may be given a task: the people who work leads.
ASSIGNABLE_ROLES = (Role.SALES, Role.ADMIN)


# --- opened by flows, once per key ------------------------------------------------
#
# A notify-sales step runs inside the worker's event transaction, for every lead
# that enters its flow. ``get_or_create`` takes a savepoint, a read and a write,
# built by the ORM each time; on PostgreSQL these are one prepared statement each.

_TASK_OPEN = (
    f"INSERT INTO {Task._meta.db_table} (lead_id, assignee_id, title, due_at, "  # noqa: S608
    "priority, status, source_key, follow_up, closed_reason, created_at, completed_at) "
    "VALUES (%(lead)s, %(assignee)s, %(title)s, %(due)s, %(priority)s, %(status)s, %(key)s, "
    "%(follow_up)s, '', %(now)s, NULL) ON CONFLICT (source_key) DO NOTHING RETURNING id"
)

_NOTIFICATION_ADD = (
    f"INSERT INTO {Notification._meta.db_table} (user_id, lead_id, message, "  # noqa: S608
    "source_key, created_at, read_at) VALUES (%(user)s, %(lead)s, %(message)s, %(key)s, "
    "%(now)s, NULL) ON CONFLICT (source_key) DO NOTHING"
)


def task_open_once(
    *,
    key: str,
    lead: Lead,
    assignee: User | None,
    title: str,
    due_at: dt.datetime | None,
    priority: str,
    follow_up: bool = True,
) -> tuple[Task, bool]:
    """The open task keyed ``key``, made with these values unless a task with
    that key exists: (task, whether it was made now)."""
    title = title[:255]
    if not prepared.enabled():
        return Task.objects.get_or_create(
            source_key=key,
            defaults={
                "lead": lead,
                "assignee": assignee,
                "title": title,
                "due_at": due_at,
                "priority": priority,
                "follow_up": follow_up,
            },
        )
    now = timezone.now()
    rows = prepared.fetch(
        _TASK_OPEN,
        {
            "lead": lead.pk,
            "assignee": assignee.pk if assignee is not None else None,
            "title": title,
            "due": due_at,
            "priority": priority,
            "status": TaskStatus.OPEN.value,
            "key": key,
            "follow_up": follow_up,
            "now": now,
        },
    )
    if not rows:
        # Made before (a step run again after a failure): as it is now.
        return Task.objects.get(source_key=key), False
    task = Task(
        pk=rows[0][0],
        lead=lead,
        assignee=assignee,
        title=title,
        due_at=due_at,
        priority=priority,
        status=TaskStatus.OPEN,
        source_key=key,
        follow_up=follow_up,
        created_at=now,
    )
    task._state.adding = False
    task._state.db = connection.alias
    return task, True


def notification_add_once(*, key: str, user: User, lead: Lead | None, message: str) -> None:
    """Notify ``user``, unless a notification keyed ``key`` exists."""
    message = message[:500]
    if not prepared.enabled():
        Notification.objects.get_or_create(
            source_key=key, defaults={"user": user, "lead": lead, "message": message}
        )
        return
    prepared.fetch(
        _NOTIFICATION_ADD,
        {
            "user": user.pk,
            "lead": lead.pk if lead is not None else None,
            "message": message,
            "key": key,
            "now": timezone.now(),
        },
    )


def _display_name(user: User) -> str:
    return person_name(user)


def _actor(user: User | None) -> str:
    return f"user {user.pk}" if user is not None else "an API key"


@transaction.atomic
def task_complete(*, task: Task, user: User | None) -> Task:
    """Mark an open task done now. Completing a task that is already done
    changes nothing (its first completion time is kept). ``user`` None: an
    API key did it."""
    now = timezone.now()
    updated = Task.objects.filter(pk=task.pk, status=TaskStatus.OPEN).update(
        status=TaskStatus.DONE, completed_at=now
    )
    if updated:
        task.status = TaskStatus.DONE
        task.completed_at = now
        logger.info("task %s completed by %s", task.pk, _actor(user))
    else:
        task.refresh_from_db(fields=["status", "completed_at"])
    return task


@transaction.atomic
def task_snooze(*, task: Task, until: dt.datetime, user: User | None) -> Task:
    """Move an open task's due time to ``until``, which must lie in the future.

    A snooze is a new due time: the task leaves "overdue" and comes back when
    ``until`` passes, with no separate snooze state to expire."""
    if timezone.is_naive(until):
        raise ValueError("until must be an aware datetime")
    if until <= timezone.now():
        raise ValidationError(gettext("Choose a time in the future."), code="past")
    updated = Task.objects.filter(pk=task.pk, status=TaskStatus.OPEN).update(due_at=until)
    if not updated:
        raise ValidationError(gettext("This task is already done."), code="done")
    task.due_at = until
    logger.info("task %s snoozed until %s by %s", task.pk, until.isoformat(), _actor(user))
    return task


@transaction.atomic
def task_reassign(*, task: Task, assignee: User, user: User | None) -> Task:
    """Give an open task to another active sales rep or admin, and notify them
    in the app (unless they reassigned it to themselves)."""
    if not assignee.is_active or user_role(assignee) not in ASSIGNABLE_ROLES:
        raise ValidationError(
            gettext("A task can only be given to an active sales rep or admin."),
            code="assignee",
        )
    if task.assignee_id == assignee.pk:
        raise ValidationError(
            gettext("The task is already assigned to %(name)s.")
            % {"name": _display_name(assignee)},
            code="unchanged",
        )
    updated = Task.objects.filter(pk=task.pk, status=TaskStatus.OPEN).update(assignee=assignee)
    if not updated:
        raise ValidationError(gettext("This task is already done."), code="done")
    task.assignee = assignee
    if user is None or assignee.pk != user.pk:
        # In the assignee's language: they read it, not the person handing it over.
        with translation.override(user_language(assignee) or settings.LANGUAGE_CODE):
            if user is None:
                message = gettext("You were assigned a task: %(title)s") % {"title": task.title}
            else:
                message = gettext("%(name)s assigned you a task: %(title)s") % {
                    "name": _display_name(user),
                    "title": task.title,
                }
        Notification.objects.create(user=assignee, lead_id=task.lead_id, message=message[:500])
    logger.info("task %s reassigned to user %s by %s", task.pk, assignee.pk, _actor(user))
    return task


def _closed_reason(stage: str) -> str:
    reasons: dict[str, str] = {
        Stage.CUSTOMER: gettext("Lead became a customer"),
        Stage.LOST: gettext("Lead was lost"),
        Stage.DISQUALIFIED: gettext("Lead was disqualified"),
    }
    return reasons.get(stage, gettext("Lead left the running"))


@transaction.atomic
def tasks_follow_up_close(*, lead_ids: Iterable[int], stage: str) -> int:
    """Close the leads' open sales follow-ups (``Task.follow_up``) because they
    reached ``stage`` (customer, lost, disqualified): nobody should call a
    customer about being a hot lead. Written in the site's language, as the
    reason is stored once for every reader. Returns how many were closed."""
    with translation.override(settings.LANGUAGE_CODE):
        reason = _closed_reason(stage)
    ids = list(lead_ids)
    closed = Task.objects.filter(lead_id__in=ids, follow_up=True, status=TaskStatus.OPEN).update(
        status=TaskStatus.CLOSED, closed_reason=reason[:255], completed_at=timezone.now()
    )
    if closed:
        logger.info("closed %s follow-up task(s) of %s lead(s): %s", closed, len(ids), stage)
    return closed


@transaction.atomic
def notifications_mark_read(*, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark the user's unread notifications read (only those in ``ids`` when
    given; ids of other users' notifications are ignored). Returns how many
    changed."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())


def snooze_until(choice: str, now: dt.datetime) -> dt.datetime | None:
    """The due time a snooze choice stands for, in the current time zone:
    ``hour`` (an hour from now), ``tomorrow`` (9:00) or ``next-week`` (Monday
    9:00). None for anything else."""
    local = timezone.localtime(now)
    nine = dt.time(9, 0)
    zone = timezone.get_current_timezone()
    if choice == "hour":
        return now + dt.timedelta(hours=1)
    if choice == "tomorrow":
        return dt.datetime.combine(local.date() + dt.timedelta(days=1), nine, tzinfo=zone)
    if choice == "next-week":
        monday = local.date() + dt.timedelta(days=7 - local.weekday())
        return dt.datetime.combine(monday, nine, tzinfo=zone)
    return None

"""Task and notification pages: "My tasks" grouped by due date, everyone's open
tasks for admins and marketers, and the notifications inbox. Complete, snooze,
reassign and mark read are htmx POSTs that answer with the changed row; without
htmx they redirect back to the list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER, ALL_ROLES
from core.vocabulary import Grade
from leads.decorators import role_required
from leads.models import Notification, Task, TaskStatus
from leads.people import person_name
from leads.roles import user_role
from leads.selectors import lead_task_sections, task_assignees, tasks_actionable_by
from leads.services import tasks as task_services
from leads.services.tasks import snooze_until

# A rep's open tasks are shown in full up to this many, the soonest due first.
MY_OPEN_LIMIT = 200
DONE_SHOWN = 20
ALL_PAGE_SIZE = 50
NOTIFICATION_PAGE_SIZE = 30
# Soonest due first; tasks without a due date last.
DUE_ORDER = (F("due_at").asc(nulls_last=True), "id")
DATETIME_SHOWN = "SHORT_DATETIME_FORMAT"
# "My tasks" sorted within each group by the lead's score or grade (?sort=);
# hottest first is the minus. Ties keep the due order.
TASK_SORTS = ("due", "score", "-score", "grade", "-grade")
GRADE_RANK: dict[str, int] = {Grade.COLD: 0, Grade.WARM: 1, Grade.HOT: 2}


def task_sort_key(sort: str) -> Callable[[Task], tuple[int, ...]] | None:
    """The key that orders tasks (their leads loaded) by ``sort``; None for the
    due order they already have."""
    sign = -1 if sort.startswith("-") else 1
    if sort.lstrip("-") == "score":
        return lambda task: (sign * task.lead.score,)
    if sort.lstrip("-") == "grade":
        return lambda task: (
            sign * GRADE_RANK.get(task.lead.grade, 0),
            sign * task.lead.score,
        )
    return None


def _sort_links(sort: str) -> dict[str, str]:
    """Where each sortable column's header leads: first click the highest
    first, a second click turns it round."""
    return {
        "due": "due",
        "score": "score" if sort == "-score" else "-score",
        "grade": "grade" if sort == "-grade" else "-grade",
    }


# --- reads ----------------------------------------------------------------------


def _task_cursor(task: Task) -> str:
    return f"{task.due_at.isoformat() if task.due_at else ''}|{task.pk}"


def _after_task_cursor(tasks: QuerySet[Task], cursor: str) -> QuerySet[Task]:
    """Tasks after ``cursor`` in ``DUE_ORDER``; an unreadable cursor is ignored."""
    due_text, _, id_text = cursor.rpartition("|")
    if not id_text.isdigit():
        return tasks
    pk = int(id_text)
    if not due_text:
        return tasks.filter(due_at__isnull=True, pk__gt=pk)
    due = parse_datetime(due_text)
    if due is None or timezone.is_naive(due):
        return tasks
    return tasks.filter(Q(due_at__gt=due) | Q(due_at=due, pk__gt=pk) | Q(due_at__isnull=True))


# --- task pages -----------------------------------------------------------------


@role_required(*ALL_ROLES)
@require_GET
def task_list(request: HtmxHttpRequest) -> HttpResponse:
    """The signed-in user's tasks grouped overdue / today / upcoming / done;
    ``?scope=all`` lists everyone's open tasks (admins and marketers)."""
    if request.GET.get("scope") == "all":
        if user_role(request.user) not in ADMIN_MARKETER:
            raise PermissionDenied
        return _all_open_tasks(request)
    now = timezone.now()
    end_of_today = dt.datetime.combine(
        timezone.localtime(now).date() + dt.timedelta(days=1),
        dt.time(0, 0),
        tzinfo=timezone.get_current_timezone(),
    )
    mine = Task.objects.filter(assignee=request.user).select_related("lead", "assignee")
    open_tasks = list(mine.filter(status=TaskStatus.OPEN).order_by(*DUE_ORDER)[: MY_OPEN_LIMIT + 1])
    truncated = len(open_tasks) > MY_OPEN_LIMIT
    open_tasks = open_tasks[:MY_OPEN_LIMIT]
    done = list(
        mine.filter(status=TaskStatus.DONE).order_by(
            F("completed_at").desc(nulls_last=True), "-id"
        )[:DONE_SHOWN]
    )
    sort = request.GET.get("sort", "due")
    if sort not in TASK_SORTS:
        sort = "due"
    key = task_sort_key(sort)
    if key is not None:
        open_tasks.sort(key=key)
    overdue = [t for t in open_tasks if t.due_at is not None and t.due_at < now]
    today = [t for t in open_tasks if t.due_at is not None and now <= t.due_at < end_of_today]
    upcoming = [t for t in open_tasks if t.due_at is None or t.due_at >= end_of_today]
    groups = [
        {
            "key": "overdue",
            "title": gettext("Overdue"),
            "tasks": overdue,
            "empty": gettext("Nothing overdue."),
        },
        {
            "key": "today",
            "title": gettext("Due today"),
            "tasks": today,
            "empty": gettext("Nothing more due today."),
        },
        {
            "key": "upcoming",
            "title": gettext("Upcoming"),
            "tasks": upcoming,
            "empty": gettext("Nothing scheduled after today."),
        },
        {
            "key": "done",
            "title": gettext("Done"),
            "tasks": done,
            "empty": gettext("Tasks you complete are listed here."),
        },
    ]
    context = {
        "groups": groups,
        "open_count": len(open_tasks),
        "truncated": truncated,
        "open_limit": MY_OPEN_LIMIT,
        "done_shown": DONE_SHOWN,
        "now": now,
        "assignees": list(task_assignees()),
        "sees_all": user_role(request.user) in ADMIN_MARKETER,
        "sort": sort,
        "sort_links": _sort_links(sort),
    }
    return render(request, "leads/tasks.html", context)


# Everyone's open tasks sorted by their lead's score (?sort=), keyset-paged by
# (score, id); the due order is the default.
ALL_TASK_SORTS = ("due", "-score", "score")


def _score_cursor(task: Task) -> str:
    return f"{task.lead.score}|{task.pk}"


def _after_score_cursor(tasks: QuerySet[Task], cursor: str, *, descending: bool) -> QuerySet[Task]:
    """Tasks after ``cursor`` in the score order; an unreadable cursor is ignored."""
    score_text, _, id_text = cursor.rpartition("|")
    if not id_text.isdigit() or not score_text.lstrip("-").isdigit():
        return tasks
    score, pk = int(score_text), int(id_text)
    if descending:
        return tasks.filter(Q(lead__score__lt=score) | Q(lead__score=score, pk__gt=pk))
    return tasks.filter(Q(lead__score__gt=score) | Q(lead__score=score, pk__gt=pk))


def _all_open_tasks(request: HtmxHttpRequest) -> HttpResponse:
    """Everyone's open tasks, soonest due first (or by the lead's score, either
    way), keyset-paginated; ``?assignee=<user id>`` or ``none`` (unassigned)
    narrows them."""
    tasks = Task.objects.filter(status=TaskStatus.OPEN).select_related("lead", "assignee")
    assignees = list(task_assignees())
    assignee = request.GET.get("assignee", "")
    error = ""
    if assignee == "none":
        tasks = tasks.filter(assignee__isnull=True)
    elif assignee.isdigit():
        tasks = tasks.filter(assignee_id=int(assignee))
    elif assignee:
        error = gettext("Choose an assignee from the list.")
        assignee = ""
    sort = request.GET.get("sort", "due")
    if sort not in ALL_TASK_SORTS:
        sort = "due"
    after = request.GET.get("after", "")
    if sort == "due":
        ordered = _after_task_cursor(tasks.order_by(*DUE_ORDER), after)
        cursor = _task_cursor
    else:
        descending = sort == "-score"
        ordered = _after_score_cursor(
            tasks.order_by("-lead__score" if descending else "lead__score", "id"),
            after,
            descending=descending,
        )
        cursor = _score_cursor
    page = list(ordered[: ALL_PAGE_SIZE + 1])
    next_after = cursor(page[ALL_PAGE_SIZE - 1]) if len(page) > ALL_PAGE_SIZE else ""
    context = {
        "tasks": page[:ALL_PAGE_SIZE],
        "next_after": next_after,
        "assignee": assignee,
        "assignees": assignees,
        "filter_error": error,
        "now": timezone.now(),
        "sort": sort,
        "score_link": "score" if sort == "-score" else "-score",
    }
    template = "leads/tasks_rows.html" if request.htmx and after else "leads/tasks_all.html"
    return render(request, template, context)


def _task_row(
    request: HtmxHttpRequest,
    task: Task,
    *,
    notice: str = "",
    error: str = "",
    actions: bool = True,
) -> HttpResponse:
    """The task's row for htmx to swap in (422 with the error shown when the
    action was refused); without htmx, a message and back to the list. Asked
    from a lead's profile (``from=profile``), its tasks box, or back to it."""
    if request.POST.get("from") == "profile":
        return _profile_tasks(request, task, notice=notice, error=error)
    if not request.htmx:
        if error:
            messages.error(request, error)
        elif notice:
            messages.success(
                request, gettext("%(task)s: %(notice)s") % {"task": task.title, "notice": notice}
            )
        return redirect("task-list")
    context = {
        "task": task,
        "notice": notice,
        "error": error,
        "actions": actions,
        "now": timezone.now(),
        "assignees": list(task_assignees()) if actions else [],
    }
    return render(request, "leads/_task_row.html", context, status=422 if error else 200)


def _profile_tasks(
    request: HtmxHttpRequest, task: Task, *, notice: str = "", error: str = ""
) -> HttpResponse:
    said = gettext("%(task)s: %(notice)s") % {"task": task.title, "notice": notice}
    if not request.htmx:
        if error:
            messages.error(request, error)
        elif notice:
            messages.success(request, said)
        return redirect("lead-detail", pk=task.lead_id)
    context = {
        "lead": task.lead,
        **lead_task_sections(task.lead),
        "now": timezone.now(),
        "tasks_notice": said if notice else "",
        "tasks_error": error,
    }
    return render(request, "leads/_profile_tasks.html", context, status=422 if error else 200)


@role_required(*ALL_ROLES)
@require_POST
def task_complete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(tasks_actionable_by(request.user), pk=pk)
    task_services.task_complete(task=task, user=request.user)
    if request.POST.get("from") == "dashboard" and request.htmx:
        # Completed from the dashboard: answer with its item there.
        return render(request, "leads/_dashboard_task.html", {"task": task, "now": timezone.now()})
    return _task_row(request, task, notice=gettext("Completed."))


@role_required(*ALL_ROLES)
@require_POST
def task_snooze(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(tasks_actionable_by(request.user), pk=pk)
    until = snooze_until(request.POST.get("until", ""), timezone.now())
    if until is None:
        return _task_row(
            request,
            task,
            error=gettext("Choose how long to snooze: 1 hour, tomorrow 9:00 or next week."),
        )
    try:
        task_services.task_snooze(task=task, until=until, user=request.user)
    except ValidationError as exc:
        return _task_row(request, task, error=" ".join(exc.messages))
    when = formats.date_format(timezone.localtime(until), DATETIME_SHOWN)
    return _task_row(request, task, notice=gettext("Snoozed until %(when)s.") % {"when": when})


@role_required(*ALL_ROLES)
@require_POST
def task_reassign(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(tasks_actionable_by(request.user), pk=pk)
    raw = request.POST.get("assignee", "")
    assignee = task_assignees().filter(pk=int(raw)).first() if raw.isdigit() else None
    if assignee is None:
        return _task_row(request, task, error=gettext("Choose a sales rep or admin from the list."))
    try:
        task_services.task_reassign(task=task, assignee=assignee, user=request.user)
    except ValidationError as exc:
        return _task_row(request, task, error=" ".join(exc.messages))
    # A rep who hands over a task on someone else's lead can no longer act on it.
    still_actionable = tasks_actionable_by(request.user).filter(pk=task.pk).exists()
    name = person_name(assignee)
    return _task_row(
        request,
        task,
        notice=gettext("Reassigned to %(name)s.") % {"name": name},
        actions=still_actionable,
    )


# --- notifications --------------------------------------------------------------


def _notification_page(user: Any, before: str = "") -> dict[str, Any]:
    notifications = Notification.objects.filter(user=user).select_related("lead").order_by("-id")
    if before.isdigit():
        notifications = notifications.filter(id__lt=int(before))
    page = list(notifications[: NOTIFICATION_PAGE_SIZE + 1])
    has_more = len(page) > NOTIFICATION_PAGE_SIZE
    return {
        "notifications": page[:NOTIFICATION_PAGE_SIZE],
        "next_before": page[NOTIFICATION_PAGE_SIZE - 1].pk if has_more else None,
        "now": timezone.now(),
    }


@role_required(*ALL_ROLES)
@require_GET
def notification_list(request: HtmxHttpRequest) -> HttpResponse:
    """The user's notifications, newest first, keyset-paginated (``?before=<id>``)."""
    before = request.GET.get("before", "")
    context = _notification_page(request.user, before)
    if request.htmx and before:
        return render(request, "leads/notifications_items.html", context)
    return render(request, "leads/notifications.html", context)


@role_required(*ALL_ROLES)
@require_POST
def notification_read(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    notification = get_object_or_404(
        Notification.objects.select_related("lead"), pk=pk, user=request.user
    )
    task_services.notifications_mark_read(user=request.user, ids=[notification.pk])
    if not request.htmx:
        return redirect("notification-list")
    notification.refresh_from_db(fields=["read_at"])
    context = {"notification": notification, "now": timezone.now(), "oob_badge": True}
    return render(request, "leads/notifications_item.html", context)


@role_required(*ALL_ROLES)
@require_POST
def notification_read_all(request: HtmxHttpRequest) -> HttpResponse:
    task_services.notifications_mark_read(user=request.user)
    if not request.htmx:
        return redirect("notification-list")
    context = {**_notification_page(request.user), "oob_badge": True}
    return render(request, "leads/notifications_panel.html", context)


@role_required(*ALL_ROLES)
@require_GET
def notification_open(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Follow a notification's link: it counts as read, then on to its lead.
    A GET on purpose, so the link opens in a new tab too; marking read twice
    changes nothing."""
    notification = get_object_or_404(Notification, pk=pk, user=request.user)
    task_services.notifications_mark_read(user=request.user, ids=[notification.pk])
    if notification.lead_id is None:
        return redirect("notification-list")
    return redirect("lead-detail", pk=notification.lead_id)

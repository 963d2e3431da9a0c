"""The leads list: search, filters and sort as GET parameters (the URL is the
shareable state), keyset pages appended by htmx, bulk actions on the checked leads
or on every lead matching the filter, and a streamed CSV export of the filter."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_POST

from core.http import HtmxHttpRequest
from core.roles import ALL_ROLES
from core.vocabulary import EngagementGrade, FitGrade
from leads.category_scores import category_scores
from leads.columns import (
    BUILT_IN_COLUMNS,
    FIXED_COLUMNS,
    LeadColumn,
    columns_need_points,
    lead_column_value,
    lead_columns_available,
    user_lead_columns,
)
from leads.decorators import role_required
from leads.forms.list import (
    BULK_ACTIONS,
    GRADES,
    GREAT_FIT,
    SORTS,
    LeadBulkForm,
    LeadFilterForm,
)
from leads.models import JobKind, JobStatus, Lead, LeadJob, Segment, SegmentKind, Stage
from leads.roles import user_role
from leads.selectors import (
    LEAD_SORTS,
    LeadFilters,
    lead_cursor,
    lead_cursor_parse,
    lead_owner_choices,
    leads_after,
    leads_filter,
    leads_sorted,
    leads_visible_to,
    sort_join,
    sort_parse,
)
from leads.services import bulk
from leads.services.exports import export_leads, export_rows
from leads.services.jobs import lead_job_start
from leads.services.policy import bulk_action_refusal, bulk_actions_allowed, owner_refusal
from leads.services.preferences import user_lead_columns_set

PAGE_SIZE = 50


def _filters(data: QueryDict) -> tuple[LeadFilters, str, dict[str, str]]:
    """The filters, the sort and the non-blank parameters (for links) in ``data``."""
    values = LeadFilterForm(data).values()
    owner = values["owner"] or None
    filters = LeadFilters(
        q=(values["q"] or "").strip(),
        segment=values["segment"],
        grade=values["grade"] or "",
        fit_grade=values["fit_grade"] or "",
        engagement_grade=values["engagement_grade"] or "",
        great_fit=values["view"] == GREAT_FIT,
        stage=values["stage"] or "",
        owner=int(owner) if owner and owner.isdigit() else owner,
        tag=(values["tag"] or "").strip(),
        score_min=values["score_min"],
        score_max=values["score_max"],
    )
    # A quick filter brings its own order: great fits by fit points, best first.
    default = "fit" if values["view"] == GREAT_FIT else "created"
    sort = values["sort"] or ""
    sort = sort if sort_parse(sort)[0] in LEAD_SORTS else default
    params = {name: str(value) for name, value in values.items() if value not in (None, "")}
    if sort == default:
        params.pop("sort", None)
    return filters, sort, params


def _matching(user: Any, filters: LeadFilters) -> QuerySet[Lead]:
    return leads_filter(leads_visible_to(user), filters)


def _cell_text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.datetime):
        return formats.date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    return str(value)


def _rows(leads: list[Lead], columns: list[LeadColumn]) -> list[dict[str, Any]]:
    scores = category_scores()
    need_points = columns_need_points(columns)
    return [
        {
            "lead": lead,
            "cells": [
                {
                    "key": column.key,
                    "label": column.label,
                    "text": _cell_text(
                        lead_column_value(lead, column, scores.points(lead) if need_points else {})
                    ),
                }
                for column in columns
            ],
        }
        for lead in leads
    ]


def _headers(columns: list[LeadColumn], sort: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Each chosen column's header: its label, and for a sortable one the link
    that sorts by it (the other way round when the list is sorted by it already)
    and its ``aria-sort``."""
    key, ascending = sort_parse(sort)
    headers = []
    for column in columns:
        header: dict[str, Any] = {"label": column.label, "key": column.key}
        if column.sort:
            current = column.sort == key
            next_sort = sort_join(column.sort, not ascending) if current else column.sort
            link = {**params, "sort": next_sort}
            header["url"] = f"{reverse('lead-list')}?{urlencode(link)}"
            header["aria_sort"] = (
                ("ascending" if ascending else "descending") if current else "none"
            )
            header["arrow"] = ("▲" if ascending else "▼") if current else ""
        headers.append(header)
    return headers


def _sort_other_label(sort: str) -> str:
    """The sort select's words for a sort it does not list (one made by clicking
    a column's header), or "" for one it lists."""
    if sort in dict(SORTS):
        return ""
    key, ascending = sort_parse(sort)
    label = next((str(c.label) for c in BUILT_IN_COLUMNS if c.sort == key), key)
    if ascending:
        return gettext("%(column)s, lowest first") % {"column": label}
    return gettext("%(column)s, highest first") % {"column": label}


def _list_context(request: HtmxHttpRequest, data: QueryDict) -> dict[str, Any]:
    filters, sort, params = _filters(data)
    matching = _matching(request.user, filters)
    columns = user_lead_columns(request.user, _available(request.user))
    leads = leads_sorted(matching, sort).select_related("owner").prefetch_related("tags")
    if columns_need_points(columns):
        leads = category_scores().with_points(leads)
    cursor = lead_cursor_parse(data.get("after", ""), sort) if data.get("after") else None
    if cursor is not None:
        leads = leads_after(leads, sort=sort, cursor=cursor)
    page = list(leads[: PAGE_SIZE + 1])
    has_more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = urlencode(params)
    next_url = None
    if has_more:
        next_params = {**params, "after": lead_cursor(page[-1], sort)}
        next_url = f"{reverse('lead-list')}?{urlencode(next_params)}"
    first_page = cursor is None
    return {
        "leads": page,
        "rows": _rows(page, columns),
        "columns": columns,
        "headers": _headers(columns, sort, params),
        "sort_other_label": _sort_other_label(sort),
        "fixed_columns": FIXED_COLUMNS,
        "column_count": len(FIXED_COLUMNS) + len(columns) + 1,
        "next_url": next_url,
        "filters": filters,
        "sort": sort,
        "params": params,
        "query": query,
        "filtered": any(name != "sort" for name in params),
        # Counting is a query of its own: only needed when there is more than a page.
        "matching_count": (matching.count() if has_more else len(page)) if first_page else None,
        "export_direct_limit": EXPORT_DIRECT_LIMIT,
    }


def _choices_context(user: Any) -> dict[str, Any]:
    segments = list(Segment.objects.only("id", "name", "kind").order_by("name"))
    owners = list(lead_owner_choices())
    role = user_role(user)
    allowed = bulk_actions_allowed(role)
    return {
        "segments": segments,
        "static_segments": [s for s in segments if s.kind == SegmentKind.STATIC],
        "owners": owners,
        # The bulk form offers only what the user's role may do (a rep: no segment
        # action, and themselves or no one as the owner).
        "bulk_actions": [(key, label) for key, label in BULK_ACTIONS if key in allowed],
        "may_bulk_segment": "segment" in allowed,
        "bulk_owners": [
            person
            for person in owners
            if owner_refusal(role=role, user_id=user.pk, owner=person) is None
        ],
        "stages": Stage.choices,
        "grades": GRADES,
        "fit_grades": FitGrade.choices,
        "engagement_grades": EngagementGrade.choices,
        "great_fit": GREAT_FIT,
        "sorts": SORTS,
        "column_choices": _column_choices(user),
    }


@role_required(*ALL_ROLES)
@require_GET
def lead_list(request: HtmxHttpRequest) -> HttpResponse:
    """Leads matching the filter in the chosen order, a keyset page at a time
    (``?after=<cursor>``). htmx gets the rows (load more) or the results (a
    changed filter); anything else, the whole page."""
    context = _list_context(request, request.GET)
    if request.htmx and not request.htmx.history_restore_request:
        if request.GET.get("after"):
            return render(request, "leads/_lead_rows.html", context)
        return render(
            request, "leads/_lead_results.html", {**context, **_choices_context(request.user)}
        )
    return render(request, "leads/lead_list.html", {**context, **_choices_context(request.user)})


# --- columns ------------------------------------------------------------------------


def _available(user: Any) -> list[LeadColumn]:
    """Every column there is, read once a request (kept on the request's user)."""
    available: list[LeadColumn] | None = getattr(user, "_lead_columns_available", None)
    if available is None:
        available = lead_columns_available()
        user._lead_columns_available = available
    return available


def _column_choices(user: Any) -> list[dict[str, Any]]:
    """Every column for the columns panel: the chosen ones in their order, then
    the rest."""
    available = _available(user)
    chosen = user_lead_columns(user, available)
    rest = [column for column in available if column not in chosen]
    return [{"column": column, "chosen": column in chosen} for column in [*chosen, *rest]]


@role_required(*ALL_ROLES)
@require_POST
def lead_columns(request: HtmxHttpRequest) -> HttpResponse:
    """Save the columns panel: the checked columns in the order listed, one of
    them first moved up or down when an arrow was pressed (``move``:
    ``<key>:up`` or ``<key>:down``). Back to the list with its filter."""
    order = request.POST.getlist("order")
    checked = set(request.POST.getlist("column"))
    key, _sep, way = request.POST.get("move", "").rpartition(":")
    if key in order and way in ("up", "down"):
        at = order.index(key)
        to = at - 1 if way == "up" else at + 1
        if 0 <= to < len(order):
            order[at], order[to] = order[to], order[at]
    user_lead_columns_set(user=request.user, columns=[k for k in order if k in checked])
    query = request.POST.get("query", "")
    if way:
        # Keep the panel open for the next move.
        query = f"{query}&columns=open" if query else "columns=open"
    url = reverse("lead-list")
    target = f"{url}?{query}#columns" if query else url
    return redirect(target)


# --- bulk actions -------------------------------------------------------------------


def _bulk_values(form: LeadBulkForm) -> dict[str, Any]:
    """The action's value as ids and names, as ``leads_bulk_change`` takes it."""
    data = form.cleaned_data
    action = data["action"]
    if action == "owner":
        return {"owner": form.new_owner.pk if form.new_owner else None}
    if action in ("tag_add", "tag_remove"):
        return {"tag": data["tag"].strip()}
    if action == "segment":
        return {"segment": data["segment"].pk}
    return {"stage": data["stage"]}


# Up to this many leads a bulk change runs in the request; more go to a worker,
# with progress in the page.
BULK_INLINE_LIMIT = 2000


def _bulk_job_start(
    request: HtmxHttpRequest, form: LeadBulkForm, filters: LeadFilters, params: dict[str, str]
) -> LeadJob:
    return lead_job_start(
        user=request.user,
        kind=JobKind.BULK,
        filters=filters,
        query=urlencode(params),
        action=form.cleaned_data["action"],
        params=_bulk_values(form),
    )


@role_required(*ALL_ROLES)
@require_POST
def lead_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Apply a bulk action to the checked leads, or (``all_matching``) to every lead
    matching the filter posted along. The whole filtered set asks for a
    confirmation with its count first. Sales reps reach their own and unassigned
    leads only, whatever ids are posted."""
    filters, _sort, params = _filters(request.POST)
    matching = _matching(request.user, filters)
    list_url = f"{reverse('lead-list')}?{urlencode(params)}" if params else reverse("lead-list")
    form = LeadBulkForm(request.POST)
    if not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return _bulk_answer(request, list_url, error=error, status=422)
    refused = bulk_action_refusal(
        role=user_role(request.user),
        user_id=request.user.pk,
        action=form.cleaned_data["action"],
        values=_bulk_values(form),
    )
    if refused:
        return _bulk_answer(request, list_url, error=" ".join(refused.values()), status=422)
    if form.cleaned_data["all_matching"]:
        if not form.cleaned_data["confirmed"]:
            context = _list_context(request, request.POST)
            context.update(_choices_context(request.user))
            context["bulk_confirm"] = {
                "count": matching.count(),
                "action": dict(BULK_ACTIONS)[form.cleaned_data["action"]],
                "fields": [
                    (name, value)
                    for name, values in request.POST.lists()
                    if name not in ("csrfmiddlewaretoken", "bulk-lead", "bulk-confirmed")
                    for value in values
                ],
            }
            template = "leads/_lead_results.html" if request.htmx else "leads/lead_list.html"
            return render(request, template, context)
        leads = matching
        if matching.count() > BULK_INLINE_LIMIT:
            job = _bulk_job_start(request, form, filters, params)
            url = reverse("lead-job-detail", args=[job.pk])
            if request.htmx:
                return HttpResponse(headers={"HX-Redirect": url})
            return redirect(url)
    else:
        leads = leads_visible_to(request.user).filter(pk__in=form.cleaned_data["lead"])
    result = bulk.leads_bulk_change(
        leads=leads,
        action=form.cleaned_data["action"],
        values=_bulk_values(form),
        user=request.user,
    )
    message = ngettext(
        "%(action)s: %(changed)d of %(total)d lead changed.",
        "%(action)s: %(changed)d of %(total)d leads changed.",
        result.total,
    ) % {
        "action": dict(BULK_ACTIONS)[form.cleaned_data["action"]],
        "changed": result.changed,
        "total": result.total,
    }
    return _bulk_answer(request, list_url, message=message)


def _bulk_answer(
    request: HtmxHttpRequest,
    list_url: str,
    *,
    message: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    if request.htmx:
        context = _list_context(request, request.POST)
        context.update(_choices_context(request.user))
        context.update({"bulk_message": message, "bulk_error": error})
        return render(request, "leads/_lead_results.html", context, status=status)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, message)
    return redirect(list_url)


# --- CSV export and long work -----------------------------------------------------

# Up to this many leads stream straight to the browser; more are written by a
# worker while the page shows progress.
EXPORT_DIRECT_LIMIT = 5000


@role_required(*ALL_ROLES)
@require_GET
def lead_export(request: HtmxHttpRequest) -> StreamingHttpResponse:
    """The leads matching the list's filter, in its order, as CSV, streamed in
    chunks so that memory stays flat however many there are."""
    filters, sort, _params = _filters(request.GET)
    columns = user_lead_columns(request.user)
    leads = export_leads(user=request.user, filters=filters, sort=sort, columns=columns)
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(
        export_rows(leads, columns), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="leads-{stamp}.csv"'
    return response


@role_required(*ALL_ROLES)
@require_POST
def lead_export_start_view(request: HtmxHttpRequest) -> HttpResponse:
    """Export the filter in the background; the answer is the progress page."""
    filters, sort, params = _filters(request.POST)
    job = lead_job_start(
        user=request.user,
        kind=JobKind.EXPORT,
        filters=filters,
        sort=sort,
        query=urlencode(params),
    )
    return redirect("lead-job-detail", pk=job.pk)


def _own_job(request: HtmxHttpRequest, pk: int) -> LeadJob:
    # Someone else's job is as good as missing: it holds their view of the leads.
    return get_object_or_404(LeadJob, pk=pk, created_by=request.user)


@role_required(*ALL_ROLES)
@require_GET
def lead_job_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = _own_job(request, pk)
    context = {"job": job, "action": dict(BULK_ACTIONS).get(job.action, "")}
    if request.htmx:
        return render(request, "leads/_job_progress.html", context)
    recent = LeadJob.objects.filter(created_by=request.user).exclude(pk=pk).order_by("-id")
    return render(request, "leads/job_detail.html", {**context, "recent": recent[:5]})


@role_required(*ALL_ROLES)
@require_GET
def lead_job_download(request: HtmxHttpRequest, pk: int) -> FileResponse:
    job = _own_job(request, pk)
    if job.kind != JobKind.EXPORT or job.status != JobStatus.DONE or not job.file:
        raise Http404
    return FileResponse(
        job.file.open("rb"),
        as_attachment=True,
        filename=job.file.name.rsplit("/", 1)[-1],
        content_type="text/csv; charset=utf-8",
    )

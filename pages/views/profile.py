"""The lead profile: header (owner, stage, grade), score with its breakdown and
history chart, a unified timeline, segments, flows, tasks and notes. Changing
owner or stage, adjusting the score and adding a note are htmx POSTs that answer
with the changed section (422 with the errors next to the fields); without htmx
they redirect back to the profile, or show it again with the errors."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER, ALL_ROLES, Role
from leads.decorators import role_required
from leads.models import Lead, Note, SegmentMembership, Stage
from leads.roles import user_role
from leads.selectors import lead_owner_choices, lead_task_sections, leads_visible_to
from leads.services.leads import lead_update
from leads.services.notes import note_create
from leads.services.policy import lead_change_refusals, lead_values, owner_refusal
from pages.forms.profile import LeadOwnerStageForm, NoteForm, ScoreAdjustForm
from pages.selectors.consent import consent_panel
from pages.selectors.lifecycle import lifecycle_panel
from pages.selectors.profile import (
    TIMELINE_FILTERS,
    lead_enrollments,
    lead_score_history,
    lead_timeline,
    timeline_cursor_parse,
)
from scoring.selectors import lead_score_breakdown
from scoring.services import score_adjust_by_hand, scoring_settings

SECTION_LIMIT = 20
# Reasons of the score shown before "Show all": the biggest, which explain most
# of it. All 112 of a lead with 10,000 changes took a third of the profile's
# time to render (bench/pages.py).
SCORE_REASONS_SHOWN = 10
# Timeline kinds left out until asked for.
TIMELINE_HIDDEN = ("flows",)
HISTORY_DAYS = 90
TIMELINE_FILTER_LABELS = {
    "events": gettext_lazy("Events"),
    "score": gettext_lazy("Score"),
    "segments": gettext_lazy("Segments"),
    "flows": gettext_lazy("Flows"),
    "tasks": gettext_lazy("Tasks"),
    "notes": gettext_lazy("Notes"),
}
# htmx leaves 4xx answers unswapped unless told; a refused form is a 422 (so is a
# change the user's role may not make: the form comes back with the reason).
INVALID = 422


# --- reads ----------------------------------------------------------------------


def _lead(request: HtmxHttpRequest, pk: int, *, lock: bool = False) -> Lead:
    """The lead if the user may see it (another rep's lead is a 404)."""
    leads = leads_visible_to(request.user).select_related("owner")
    if lock:
        leads = leads.select_for_update(of=("self",))
    return get_object_or_404(leads, pk=pk)


def _can_adjust(user: Any) -> bool:
    role = user_role(user)
    if role in ADMIN_MARKETER:
        return True
    return role == Role.SALES and scoring_settings().sales_can_adjust


def _selected_filters(request: HtmxHttpRequest) -> list[str]:
    """The timeline's type filters; unless the filter form was sent, all but the
    flows' steps (many, and seldom what a rep looks for: one tick shows them)."""
    if "filtered" not in request.GET:
        return [f for f in TIMELINE_FILTERS if f not in TIMELINE_HIDDEN]
    chosen = set(request.GET.getlist("kind"))
    return [f for f in TIMELINE_FILTERS if f in chosen]


def _header_context(
    lead: Lead, form: LeadOwnerStageForm | None = None, *, user: Any
) -> dict[str, Any]:
    role = user_role(user)
    return {
        "lead": lead,
        "owner_form": form
        or LeadOwnerStageForm(initial={"owner": lead.owner_id, "stage": lead.stage}),
        # Only the owners this user may choose (a rep: themselves).
        "owners": [
            person
            for person in lead_owner_choices()
            if owner_refusal(role=role, user_id=user.pk, owner=person) is None
        ],
        "stages": Stage.choices,
    }


def _history_chart(lead: Lead) -> str:
    points = lead_score_history(lead=lead, days=HISTORY_DAYS)
    config = {
        "type": "line",
        "data": {
            "labels": [formats.date_format(day, "SHORT_DATE_FORMAT") for day, _ in points],
            "datasets": [
                {
                    "label": gettext("Score"),
                    "data": [score for _, score in points],
                    "stepped": True,
                    "fill": False,
                    "pointRadius": 2,
                }
            ],
        },
        "options": {
            "responsive": True,
            "maintainAspectRatio": False,
            "plugins": {"legend": {"display": False}},
            "scales": {"y": {"beginAtZero": True}},
        },
    }
    return json.dumps(config)


def _score_context(
    request: HtmxHttpRequest, lead: Lead, form: ScoreAdjustForm | None = None
) -> dict[str, Any]:
    return {
        "lead": lead,
        "breakdown": lead_score_breakdown(
            lead=lead,
            limit=None if request.GET.get("reasons") == "all" else SCORE_REASONS_SHOWN,
        ),
        "history_chart": _history_chart(lead),
        "history_days": HISTORY_DAYS,
        "can_adjust": _can_adjust(request.user),
        "adjust_form": form or ScoreAdjustForm(initial={"category": "engagement"}),
    }


def _timeline_context(request: HtmxHttpRequest, lead: Lead) -> dict[str, Any]:
    selected = _selected_filters(request)
    cursor = timeline_cursor_parse(request.GET.get("before", ""))
    page = lead_timeline(lead=lead, filters=selected, cursor=cursor)
    filter_query = urlencode([("filtered", "1"), *(("kind", f) for f in selected)])
    return {
        "lead": lead,
        "timeline": page,
        "timeline_filters": [
            (f, TIMELINE_FILTER_LABELS[f], f in selected) for f in TIMELINE_FILTERS
        ],
        "filter_query": filter_query,
        "more_query": urlencode({"before": page.next_cursor}) + "&" + filter_query,
        "all_filters": "filtered" not in request.GET or len(selected) == len(TIMELINE_FILTERS),
    }


def _notes_context(lead: Lead, form: NoteForm | None = None) -> dict[str, Any]:
    notes = (
        Note.objects.filter(lead=lead)
        .select_related("author")
        .order_by("-created_at", "-pk")[:SECTION_LIMIT]
    )
    return {"lead": lead, "notes": list(notes), "note_form": form or NoteForm()}


def _profile_context(request: HtmxHttpRequest, lead: Lead, **forms: Any) -> dict[str, Any]:
    segments = (
        SegmentMembership.objects.filter(lead=lead, left_at__isnull=True)
        .select_related("segment")
        .order_by("segment__name")
    )
    return {
        **_header_context(lead, forms.get("owner_form"), user=request.user),
        **_score_context(request, lead, forms.get("adjust_form")),
        **_timeline_context(request, lead),
        **_notes_context(lead, forms.get("note_form")),
        **lifecycle_panel(lead, user=request.user),
        **consent_panel(lead, user=request.user),
        "tags": list(lead.tags.all()),
        "segments": list(segments),
        "enrollments": lead_enrollments(lead=lead, limit=SECTION_LIMIT),
        **lead_task_sections(lead, SECTION_LIMIT),
        "now": timezone.now(),
    }


def _invalid(
    request: HtmxHttpRequest, lead: Lead, partial: str, context: dict[str, Any], **forms: Any
) -> HttpResponse:
    """A refused form: the section with its errors (htmx) or the whole page."""
    if request.htmx:
        return render(request, partial, context, status=INVALID)
    return render(
        request, "leads/profile.html", _profile_context(request, lead, **forms), status=INVALID
    )


# --- pages ----------------------------------------------------------------------


@role_required(*ALL_ROLES)
@require_GET
def lead_profile(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    lead = _lead(request, pk)
    return render(request, "leads/profile.html", _profile_context(request, lead))


@role_required(*ALL_ROLES)
@require_GET
def lead_profile_timeline(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The timeline, filtered by type (``kind``), from ``before`` on: the next
    entries for "load more", or the whole list when the filters change."""
    lead = _lead(request, pk)
    if not request.htmx:
        return redirect(f"{reverse('lead-detail', args=[lead.pk])}?{request.GET.urlencode()}")
    template = (
        "leads/_profile_timeline_items.html"
        if request.GET.get("before")
        else "leads/_profile_timeline_list.html"
    )
    return render(request, template, _timeline_context(request, lead))


@role_required(*ALL_ROLES)
@require_GET
def lead_profile_score_reasons(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Every reason of the score (the profile shows the biggest): the table for
    htmx, or the profile without it."""
    lead = _lead(request, pk)
    if not request.htmx:
        return redirect(f"{reverse('lead-detail', args=[lead.pk])}?reasons=all#score-breakdown")
    context = {"lead": lead, "breakdown": lead_score_breakdown(lead=lead)}
    return render(request, "leads/_profile_score_reasons.html", context)


@role_required(*ALL_ROLES)
@require_POST
def lead_profile_update(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Change the owner or the stage, through ``lead_update`` so that
    ``field.changed`` events (and the flows they trigger) follow."""
    form = LeadOwnerStageForm(request.POST)
    with transaction.atomic():
        lead = _lead(request, pk, lock=True)
        if not form.is_valid():
            return _invalid(
                request,
                lead,
                "leads/_profile_header.html",
                _header_context(lead, form, user=request.user),
                owner_form=form,
            )
        changes = {"owner": form.cleaned_data["owner"], "stage": form.cleaned_data["stage"]}
        refused = lead_change_refusals(
            role=user_role(request.user),
            user_id=request.user.pk,
            current=lead_values(lead),
            changes=changes,
        )
        if refused:
            for name, message in refused.items():
                form.add_error(name if name in form.fields else None, message)
            return _invalid(
                request,
                lead,
                "leads/_profile_header.html",
                _header_context(lead, form, user=request.user),
                owner_form=form,
            )
        changed = lead_update(lead=lead, changes=changes)
    notice = gettext("Saved.") if changed else gettext("Nothing changed.")
    if not request.htmx:
        messages.success(request, notice)
        return redirect("lead-detail", pk=lead.pk)
    context = {**_header_context(lead, user=request.user), "header_notice": notice}
    return render(request, "leads/_profile_header.html", context)


@role_required(*ALL_ROLES)
@require_POST
def lead_profile_score(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Add or take away points by hand, with a required reason, logged in the
    ledger with the user. Sales reps only when the scoring settings allow it."""
    lead = _lead(request, pk)
    if not _can_adjust(request.user):
        raise PermissionDenied
    form = ScoreAdjustForm(request.POST)
    if not form.is_valid():
        return _invalid(
            request,
            lead,
            "leads/_profile_score.html",
            _score_context(request, lead, form),
            adjust_form=form,
        )
    score_adjust_by_hand(
        lead=lead,
        delta=form.cleaned_data["delta"],
        category=form.cleaned_data["category"],
        reason=form.cleaned_data["reason"],
        user=request.user,
    )
    notice = gettext("Score changed by %(delta)+d points.") % {"delta": form.cleaned_data["delta"]}
    if not request.htmx:
        messages.success(request, notice)
        return redirect("lead-detail", pk=lead.pk)
    lead.refresh_from_db()
    context = {
        **_score_context(request, lead),
        **_header_context(lead, user=request.user),
        "score_notice": notice,
        "header_oob": True,
    }
    return render(request, "leads/_profile_score.html", context)


@role_required(*ALL_ROLES)
@require_POST
def lead_profile_note(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    lead = _lead(request, pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            note_create(lead=lead, author=request.user, body=form.cleaned_data["body"])
        except ValidationError as exc:
            form.add_error("body", exc)
    if not form.is_valid():
        return _invalid(
            request, lead, "leads/_profile_notes.html", _notes_context(lead, form), note_form=form
        )
    if not request.htmx:
        messages.success(request, gettext("Note added."))
        return redirect("lead-detail", pk=lead.pk)
    return render(
        request,
        "leads/_profile_notes.html",
        {**_notes_context(lead), "note_notice": gettext("Note added.")},
    )

"""The lead profile's lifecycle panel: open an opportunity, mark one won or lost,
correct where the lead came from. htmx POSTs that answer with the panel (and the
header, whose stage may have moved, out of band); 422 with the errors beside
the fields; without htmx they redirect back to the profile."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from core.http import HtmxHttpRequest
from core.roles import ALL_ROLES
from leads.decorators import role_required
from leads.models import Lead, Opportunity
from leads.roles import user_role
from leads.services.leads import lead_update
from leads.services.outcomes import opportunity_lose, opportunity_open, opportunity_win
from leads.services.policy import lead_change_refusals, lead_values, opportunity_refusal
from pages.forms.lifecycle import (
    LeadLocaleForm,
    LeadSourceForm,
    OpportunityLoseForm,
    OpportunityOpenForm,
)
from pages.selectors.lifecycle import lifecycle_panel
from pages.views.profile import INVALID, _header_context, _lead, _profile_context

PANEL = "leads/_profile_lifecycle.html"


def _answer(request: HtmxHttpRequest, lead: Lead, notice: str) -> HttpResponse:
    if not request.htmx:
        messages.success(request, notice)
        return redirect("lead-detail", pk=lead.pk)
    context = {
        **_header_context(lead, user=request.user),
        **lifecycle_panel(lead, user=request.user),
        "lifecycle_notice": notice,
        "header_oob": True,
    }
    return render(request, PANEL, context)


def _refused(
    request: HtmxHttpRequest,
    lead: Lead,
    form: Form | None,
    exc: ValidationError | None = None,
    **kw: Any,
) -> HttpResponse:
    """The panel again with the form's errors: a service's refusal beside the
    field it names, or above the panel ("already won")."""
    message: list[str] = []
    if exc is not None and hasattr(exc, "error_dict") and form is not None:
        for field, errors in exc.message_dict.items():
            if field in form.fields:
                form.add_error(field, errors)
            else:
                message += errors
    elif exc is not None:
        message += exc.messages
    context = lifecycle_panel(lead, user=request.user, **kw)
    context["lifecycle_error"] = " ".join(message)
    if request.htmx:
        return render(request, PANEL, context, status=INVALID)
    return render(
        request,
        "leads/profile.html",
        {**_profile_context(request, lead), **context},
        status=INVALID,
    )


def _deal_worker(request: HtmxHttpRequest) -> None:
    if opportunity_refusal(user_role(request.user)) is not None:
        raise PermissionDenied


@role_required(*ALL_ROLES)
@require_POST
def lead_opportunity_open(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Open a deal with the lead; it becomes an opportunity unless a customer."""
    _deal_worker(request)
    form = OpportunityOpenForm(request.POST)
    with transaction.atomic():
        lead = _lead(request, pk, lock=True)
        if not form.is_valid():
            return _refused(request, lead, form, open_form=form)
        try:
            opportunity_open(
                lead=lead,
                value=form.cleaned_data["value"],
                currency=form.cleaned_data["currency"],
                name=form.cleaned_data["name"],
                user=request.user,
            )
        except ValidationError as exc:
            return _refused(request, lead, form, exc, open_form=form)
    return _answer(request, lead, gettext("Opportunity opened."))


def _opportunity(lead: Lead, opportunity_pk: int) -> Opportunity:
    return get_object_or_404(Opportunity.objects.filter(lead=lead), pk=opportunity_pk)


@role_required(*ALL_ROLES)
@require_POST
def lead_opportunity_win(request: HtmxHttpRequest, pk: int, opportunity_pk: int) -> HttpResponse:
    """Mark a deal won: the lead becomes a customer."""
    _deal_worker(request)
    with transaction.atomic():
        lead = _lead(request, pk, lock=True)
        opportunity = _opportunity(lead, opportunity_pk)
        opportunity.lead = lead
        try:
            opportunity_win(opportunity=opportunity, user=request.user)
        except ValidationError as exc:
            return _refused(request, lead, None, exc)
    return _answer(request, lead, gettext("Marked won: the lead is a customer."))


@role_required(*ALL_ROLES)
@require_POST
def lead_opportunity_lose(request: HtmxHttpRequest, pk: int, opportunity_pk: int) -> HttpResponse:
    """Mark a deal lost, with the reason."""
    _deal_worker(request)
    form = OpportunityLoseForm(request.POST)
    with transaction.atomic():
        lead = _lead(request, pk, lock=True)
        opportunity = _opportunity(lead, opportunity_pk)
        opportunity.lead = lead
        if not form.is_valid():
            return _refused(request, lead, form, lose_form=form, lose_id=opportunity.pk)
        try:
            opportunity_lose(
                opportunity=opportunity, reason=form.cleaned_data["reason"], user=request.user
            )
        except ValidationError as exc:
            return _refused(request, lead, form, exc, lose_form=form, lose_id=opportunity.pk)
    return _answer(request, lead, gettext("Marked lost."))


@role_required(*ALL_ROLES)
@require_POST
def lead_source_update(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Correct where the lead came from (anyone who may edit the lead)."""
    form = LeadSourceForm(request.POST)
    with transaction.atomic():
        lead = _lead(request, pk, lock=True)
        if not form.is_valid():
            return _refused(request, lead, form, source_form=form)
        changes = {
            "source": form.cleaned_data["source"],
            "source_detail": form.cleaned_data["source_detail"].strip(),
        }
        refused = lead_change_refusals(
            role=user_role(request.user),
            user_id=request.user.pk,
            current=lead_values(lead),
            changes=changes,
        )
        if refused:
            return _refused(
                request,
                lead,
                form,
                ValidationError({k: [v] for k, v in refused.items()}),
                source_form=form,
            )
        changed = lead_update(lead=lead, changes=changes)
    return _answer(request, lead, gettext("Saved.") if changed else gettext("Nothing changed."))


@role_required(*ALL_ROLES)
@require_POST
def lead_locale_update(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Set the lead's language and time zone (anyone who may edit the lead)."""
    form = LeadLocaleForm(request.POST)
    with transaction.atomic():
        lead = _lead(request, pk, lock=True)
        if not form.is_valid():
            return _refused(request, lead, form, locale_form=form)
        changes = {
            "language": form.cleaned_data["language"],
            "time_zone": form.cleaned_data["time_zone"],
        }
        refused = lead_change_refusals(
            role=user_role(request.user),
            user_id=request.user.pk,
            current=lead_values(lead),
            changes=changes,
        )
        if refused:
            return _refused(
                request,
                lead,
                form,
                ValidationError({k: [v] for k, v in refused.items()}),
                locale_form=form,
            )
        changed = lead_update(lead=lead, changes=changes)
    return _answer(request, lead, gettext("Saved.") if changed else gettext("Nothing changed."))

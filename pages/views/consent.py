"""The profile's consent card: an admin or marketer sets a lead's marketing
consent with a reason, through the consent rules (only an admin lifts a
withdrawal the person made)."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER
from leads.decorators import role_required
from leads.models import ConsentSource, Lead
from leads.selectors import leads_visible_to
from leads.services.consent import ConsentRefused, consent_set
from pages.forms.consent import LeadConsentForm
from pages.selectors.consent import consent_panel

PARTIAL = "leads/_profile_consent.html"


def _render(
    request: HtmxHttpRequest,
    lead: Lead,
    form: LeadConsentForm | None = None,
    *,
    notice: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {"lead": lead, "consent_notice": notice, **consent_panel(lead, user=request.user)}
    if form is not None:
        context["consent_form"] = form
    return render(request, PARTIAL, context, status=status)


@role_required(*ADMIN_MARKETER)
@require_POST
def lead_consent_update(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    form = LeadConsentForm(request.POST)
    lead = get_object_or_404(leads_visible_to(request.user), pk=pk)
    if not form.is_valid():
        return _render(request, lead, form, status=422)
    with transaction.atomic():
        try:
            record = consent_set(
                lead=lead,
                state=form.cleaned_data["state"],
                source=ConsentSource.USER,
                source_detail=form.cleaned_data["reason"].strip(),
                user=request.user,
            )
        except ConsentRefused as refused:
            form.add_error("state", refused.message)
            return _render(request, lead, form, status=422)
    notice = gettext("Saved.") if record is not None else gettext("Nothing changed.")
    if not request.htmx:
        messages.success(request, notice)
        return redirect("lead-detail", pk=lead.pk)
    lead.refresh_from_db()
    return _render(request, lead, notice=notice)

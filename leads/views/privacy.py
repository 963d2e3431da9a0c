"""Privacy requests, for admins: download everything held about a lead, and
erase a lead (confirmed by typing its email, or its number when it has none)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from core.http import HtmxHttpRequest
from core.roles import Role
from leads.decorators import role_required
from leads.models import Lead
from leads.services.privacy import lead_erase, lead_export_response


@role_required(Role.ADMIN)
@require_GET
def lead_export_view(request: HtmxHttpRequest, pk: int) -> StreamingHttpResponse:
    return lead_export_response(get_object_or_404(Lead, pk=pk))


def erase_phrase(lead: Lead) -> str:
    return lead.email or str(lead.pk)


class EraseForm(forms.Form):
    confirm = forms.CharField(label=gettext_lazy("Type to confirm"), max_length=254)

    def __init__(self, *args: object, lead: Lead, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lead = lead

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"].strip()
        if value.lower() != erase_phrase(self.lead).lower():
            raise forms.ValidationError(
                gettext("That does not match. Nothing was erased."), code="mismatch"
            )
        return value


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def lead_erase_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    lead = get_object_or_404(Lead.objects.select_related("owner"), pk=pk)
    form = EraseForm(request.POST or None, lead=lead)
    if request.method == "POST" and form.is_valid():
        record = lead_erase(lead=lead, user=request.user, via="web")
        messages.success(
            request,
            gettext("Lead #%(id)s and all its data are erased (%(rows)s rows).")
            % {"id": record.lead_ref, "rows": record.total_rows},
        )
        return redirect("lead-list")
    return render(
        request,
        "leads/erase.html",
        {"lead": lead, "form": form, "phrase": erase_phrase(lead)},
        status=422 if form.errors else 200,
    )

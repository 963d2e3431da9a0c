"""Pages a lead reaches from an email, with no login: unsubscribe and the double
opt-in confirmation. Each is shown in the lead's language."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from emails.consent import (
    Confirmation,
    confirmation_look,
    consent_confirm,
    consent_wording,
)
from emails.links import ConfirmTokenExpired, confirm_token_read, unsubscribe_token_read
from emails.unsubscribe import unsubscribe_record
from leads.models import Lead
from leads.selectors import lead_language
from leads.services.throttle import client_address


def _page(
    request: HttpRequest, template: str, context: dict[str, object], status: int = 200
) -> HttpResponse:
    response = render(request, template, context, status=status)
    # The token in the address must not leak to other sites, nor the page be indexed.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "no-store"
    return response


def _invalid(request: HttpRequest) -> HttpResponse:
    return _page(request, "emails/public/link_invalid.html", {}, status=404)


# No CSRF: the link is the credential, and RFC 8058's one-click POST comes from
# the mail provider, without a cookie or a form of ours.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: a page with one button (link scanners fetch GETs, so a GET changes
    nothing); POST: unsubscribe, the button's or a provider's one-click
    (``List-Unsubscribe=One-Click``)."""
    data = unsubscribe_token_read(token)
    lead = Lead.objects.filter(pk=data.lead_id).first() if data is not None else None
    if lead is None:
        return _invalid(request)
    with translation.override(lead_language(lead)):
        if request.method == "POST":
            unsubscribe_record(
                lead=lead,
                send_key=data.send_key if data is not None else "",
                one_click=request.POST.get("List-Unsubscribe") == "One-Click",
                ip_address=client_address(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
            return _page(request, "emails/public/unsubscribed.html", {"lead": lead})
        return _page(request, "emails/public/unsubscribe.html", {"lead": lead})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def consent_confirm_view(request: HttpRequest, token: str) -> HttpResponse:
    """The double opt-in link. GET shows what the person agrees to, with one
    button; POST confirms. A GET alone does not, for the same reason as
    unsubscribing: mail scanners open links, and a scanner's visit is no one's
    consent (nor evidence of it)."""
    try:
        record_id = confirm_token_read(token)
    except ConfirmTokenExpired:
        return _page(request, "emails/public/confirm_expired.html", {}, status=410)
    found: Confirmation | None = None
    if record_id is not None:
        found = confirmation_look(record_id=record_id)
    if record_id is None or found is None:
        return _invalid(request)
    # The wording is kept in the language the page showed it in.
    with translation.override(lead_language(found.lead)):
        if request.method == "POST":
            found = consent_confirm(
                record_id=record_id,
                ip_address=client_address(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
            if found is None:
                return _invalid(request)
        context = {
            "status": found.status,
            "lead": found.lead,
            "wording": consent_wording(organisation=found.organisation),
        }
        return _page(request, "emails/public/confirm.html", context)

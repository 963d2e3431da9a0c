"""Email pages: templates and their editor with a preview and a test send (admins
and marketers); senders and email settings, and the outbox of the embedded default
("Sent emails"), for admins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db.models import ProtectedError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER, Role
from emails import selectors
from emails.blocks import block_type_labels, blocks_problems
from emails.forms import EmailSettingsForm, SenderForm, TemplateForm
from emails.models import EmailSend, EmailTemplate, OutboxMessage, Sender, SendStatus
from emails.rules import CANCEL, RETRY, SEND_NOW, send_actions, send_explanation
from emails.services import (
    EMAIL_SETTINGS_FIELDS,
    SendActionRefused,
    SenderInUse,
    TemplateInvalid,
    email_send_cancel,
    email_send_now,
    email_send_retry,
    email_settings_get,
    email_settings_update,
    sender_create,
    sender_delete,
    template_create,
    template_delete,
    template_preview,
    template_test_send,
    template_update,
)
from leads.decorators import role_required
from leads.models import Lead

builders_only = role_required(*ADMIN_MARKETER)
admin_only = role_required(Role.ADMIN)
OUTBOX_PAGE_SIZE = 50
HELD_PAGE_SIZE = 50


def _sample_lead() -> Lead:
    """Whom to preview for when there are no leads yet."""
    return Lead(
        first_name="Alex",
        last_name="Example",
        email="alex@example.com",
        company_name="Example GmbH",
        job_title="Head of Marketing",
        language="",
    )


def _editor_context(form: TemplateForm, template: EmailTemplate | None) -> dict[str, Any]:
    return {
        "form": form,
        "template": template,
        "block_labels": block_type_labels(),
        "columns_sides": [("left", gettext("Left column")), ("right", gettext("Right column"))],
        "lead_choices": selectors.preview_lead_choices(),
        "has_senders": Sender.objects.exists(),
        "merge_tag_help": gettext(
            "Merge tags fill in the lead's data anywhere: {{ first_name }}, {{ company_name }}, "
            "{{ custom.plan }} for a custom field, {{ owner.name }} for the lead's owner; "
            'with a fallback: {{ first_name | default: "there" }}.'
        ),
    }


def _save(form: TemplateForm, template: EmailTemplate | None, user: User) -> EmailTemplate | None:
    data = form.cleaned_data
    values = {
        "name": data["name"],
        "subject": data["subject"],
        "preheader": data.get("preheader", ""),
        "sender": data.get("sender"),
        "kind": data["kind"],
        "blocks": data.get("blocks", []),
    }
    try:
        if template is None:
            return template_create(created_by=user, **values)
        return template_update(template=template, **values)
    except TemplateInvalid as invalid:
        for field_name, problems in invalid.fields.items():
            for problem in problems:
                form.add_error(field_name, problem)
        return None


@builders_only
@require_GET
def template_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "emails/template_list.html", {"templates": selectors.templates_listed()})


@builders_only
@require_http_methods(["GET", "POST"])
def template_new(request: HtmxHttpRequest) -> HttpResponse:
    initial = {
        "kind": "marketing",
        "blocks": [
            {"type": "heading", "text": 'Hello {{ first_name | default: "there" }}'},
            {"type": "text", "text": gettext("Write your message here.")},
        ],
    }
    form = TemplateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        assert isinstance(request.user, User)
        template = _save(form, None, request.user)
        if template is not None:
            messages.success(request, gettext("The template is saved."))
            return redirect("email-template-edit", pk=template.pk)
    return render(request, "emails/template_editor.html", _editor_context(form, None))


@builders_only
@require_http_methods(["GET", "POST"])
def template_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(EmailTemplate.objects.select_related("sender"), pk=pk)
    form = TemplateForm(request.POST or None, template=template)
    if request.method == "POST" and form.is_valid():
        assert isinstance(request.user, User)
        if _save(form, template, request.user) is not None:
            messages.success(request, gettext("The template is saved."))
            return redirect("email-template-edit", pk=template.pk)
    return render(request, "emails/template_editor.html", _editor_context(form, template))


def _unsaved_from_post(
    request: HtmxHttpRequest, template: EmailTemplate | None
) -> tuple[TemplateForm, EmailTemplate | None, list[str]]:
    """The template as the editor has it now (saved or not), and what keeps it
    from rendering."""
    form = TemplateForm(request.POST, template=template)
    form.is_valid()
    # Empty required fields are for saving to say; the preview names the rest,
    # each with its field's label unless the sentence names its place itself.
    problems = [
        error.message % (error.params or {})
        if name == "blocks"
        else f"{form.fields[name].label}: {error.message % (error.params or {})}"
        for name, errors in form.errors.as_data().items()
        if name in form.fields
        for error in errors
        if error.code != "required"
    ]
    blocks = form.cleaned_data.get("blocks")
    if "blocks" in form.errors and blocks is None:
        return form, None, problems
    if blocks_problems(blocks or []):
        return form, None, problems
    unsaved = form.unsaved()
    unsaved.subject = request.POST.get("subject", "")
    unsaved.preheader = request.POST.get("preheader", "")
    return form, unsaved, problems


def _preview_lead(request: HtmxHttpRequest) -> tuple[Lead | None, str]:
    email = request.POST.get("preview_lead", "")
    lead = selectors.preview_lead(email)
    if lead is None and email.strip():
        return None, gettext("No lead has the address %(email)s.") % {"email": email.strip()}
    return lead or _sample_lead(), ""


@builders_only
@require_POST
def template_preview_view(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    """The editor's content rendered for a lead (saved or not), shown at desktop
    and mobile width."""
    template = get_object_or_404(EmailTemplate, pk=pk) if pk is not None else None
    _form, unsaved, problems = _unsaved_from_post(request, template)
    lead, lead_problem = _preview_lead(request)
    rendered = None
    if unsaved is not None and lead is not None:
        rendered = template_preview(template=unsaved, lead=lead)
    context = {
        "rendered": rendered,
        "problems": problems,
        "lead": lead,
        "lead_problem": lead_problem,
    }
    return render(request, "emails/_preview.html", context)


@builders_only
@require_POST
def template_test_view(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    """Send the editor's content, as the chosen lead would get it, to the user."""
    template = get_object_or_404(EmailTemplate, pk=pk) if pk is not None else None
    _form, unsaved, problems = _unsaved_from_post(request, template)
    lead, lead_problem = _preview_lead(request)
    assert isinstance(request.user, User)
    if unsaved is None or lead is None:
        status, message = (
            "danger",
            lead_problem
            or gettext("Fix the blocks first: %(problems)s") % {"problems": " ".join(problems)},
        )
    elif not request.user.email:
        status, message = "danger", gettext("Your account has no email address to send a test to.")
    else:
        template_test_send(template=unsaved, lead=lead, user=request.user)
        status, message = (
            "success",
            gettext("A test is on its way to %(email)s.") % {"email": request.user.email},
        )
    return render(request, "emails/_test_status.html", {"status": status, "message": message})


@builders_only
@require_POST
def template_delete_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(EmailTemplate, pk=pk)
    try:
        template_delete(template=template)
    except ProtectedError:
        messages.error(
            request, gettext("Flows still send this template; remove it from them first.")
        )
        return redirect("email-template-edit", pk=pk)
    messages.success(request, gettext("The template is deleted."))
    return redirect("email-template-list")


# --- admins: senders and settings ---------------------------------------------------


def _settings_page(request: HtmxHttpRequest, context: dict[str, Any]) -> HttpResponse:
    context["section"] = "email"
    if request.htmx and request.method == "GET":
        return render(request, "emails/_settings.html", context)
    return render(request, "emails/settings.html", context)


@admin_only
@require_http_methods(["GET", "POST"])
def email_settings_page(request: HtmxHttpRequest) -> HttpResponse:
    """Senders, the postal address, sending rate, frequency cap, send window and
    double opt-in. One page, two forms: ``form`` names which one was sent."""
    current = email_settings_get()
    which = request.POST.get("form", "")
    settings_form = EmailSettingsForm.for_settings(
        current, request.POST if which == "settings" else None
    )
    sender_form = SenderForm(request.POST if which == "sender" else None)
    if which == "settings" and settings_form.is_valid():
        email_settings_update(
            **{name: settings_form.cleaned_data[name] for name in EMAIL_SETTINGS_FIELDS}
        )
        messages.success(request, gettext("The email settings are saved."))
        return redirect("settings-email")
    if which == "sender" and sender_form.is_valid():
        sender_create(
            name=sender_form.cleaned_data["name"],
            address=sender_form.cleaned_data["address"],
            reply_to=sender_form.cleaned_data["reply_to"],
        )
        messages.success(request, gettext("The sender is added."))
        return redirect("settings-email")
    context = {
        "settings_form": settings_form,
        "sender_form": sender_form,
        "senders": selectors.senders_listed(),
    }
    return _settings_page(request, context)


@admin_only
@require_POST
def sender_delete_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    sender = get_object_or_404(Sender, pk=pk)
    try:
        sender_delete(sender=sender)
    except SenderInUse as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, gettext("The sender is removed."))
    return redirect("settings-email")


# --- admins: the outbox ---------------------------------------------------------------


@admin_only
@require_GET
def outbox_list(request: HtmxHttpRequest) -> HttpResponse:
    page = Paginator(selectors.outbox_listed(), OUTBOX_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "emails/outbox_list.html", {"page": page})


@admin_only
@require_GET
def outbox_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(OutboxMessage, pk=pk)
    return render(request, "emails/outbox_detail.html", {"message": message})


# --- admins: held and failed sends ------------------------------------------------


@dataclass
class AttentionRow:
    send: EmailSend
    explanation: str
    actions: tuple[str, ...]


def _held_filter(value: str | None) -> str:
    return value if value in (SendStatus.HELD, SendStatus.FAILED) else ""


@admin_only
@require_GET
def held_list(request: HtmxHttpRequest) -> HttpResponse:
    """Sends that wait (held, with the rule and the time they are tried again) and
    sends that failed (with their error), with what an admin may do about each."""
    status = _held_filter(request.GET.get("status"))
    page = Paginator(selectors.sends_needing_attention(status=status), HELD_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    period = email_settings_get().frequency_period
    rows = [
        AttentionRow(
            send=send,
            explanation=send_explanation(
                status=send.status, held_for=send.held_for, frequency_period=period
            ),
            actions=send_actions(status=send.status, held_for=send.held_for),
        )
        for send in page.object_list
    ]
    counts = selectors.attention_counts()
    context = {
        "page": page,
        "rows": rows,
        "status": status,
        "counts": counts,
        "total": sum(counts.values()),
        "actions": {"send_now": SEND_NOW, "retry": RETRY, "cancel": CANCEL},
    }
    return render(request, "emails/held_list.html", context)


_ACTIONS = {
    SEND_NOW: (email_send_now, gettext_lazy("The email goes out now, outside the send window.")),
    RETRY: (email_send_retry, gettext_lazy("The email is tried again now.")),
}


@admin_only
@require_POST
def held_action(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    """Send now, retry or cancel one send, then back to the list as it was."""
    try:
        if action == CANCEL:
            assert isinstance(request.user, User)
            email_send_cancel(send_id=pk, user=request.user)
            messages.success(request, gettext("The email is cancelled; it will not be sent."))
        elif action in _ACTIONS:
            service, done = _ACTIONS[action]
            service(send_id=pk)
            messages.success(request, str(done))
        else:
            raise Http404
    except SendActionRefused as refused:
        messages.error(request, str(refused))
    query = {
        name: value
        for name in ("status", "page")
        if (value := request.POST.get(name, "")) and (name != "status" or _held_filter(value))
    }
    url = reverse("email-held")
    return redirect(f"{url}?{urlencode(query)}" if query else url)

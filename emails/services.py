"""Writing templates, senders and the email settings; sending a test of a template.

A template is checked before it is saved (``template_problems``: a name no other
template has, blocks of a known shape, merge tags that name existing fields),
and every save moves its revision, the key of its compiled HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import formataddr
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F, ProtectedError
from django.utils import timezone
from django.utils.translation import gettext as _

from emails.blocks import block_texts, blocks_problems
from emails.merge_tags import merge_tag_problems
from emails.models import EmailKind, EmailSend, EmailSettings, EmailTemplate, Sender, SendStatus
from emails.rendering import RenderedEmail, email_render
from emails.rules import CANCEL, RETRY, SEND_NOW, send_actions
from emails.sending import email_sends_kick
from leads.models import FieldDefinition, Lead

# What the preview and a test put where the unsubscribe link goes: nobody is
# unsubscribed by clicking a test.
PREVIEW_UNSUBSCRIBE_URL = "#unsubscribe"
TEMPLATE_FIELDS = ("name", "subject", "preheader", "sender", "kind", "blocks")


@dataclass
class TemplateInvalid(Exception):
    """What is wrong with a template, per field, in plain sentences."""

    fields: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(message for messages in self.fields.values() for message in messages)


def template_problems(
    *,
    name: str,
    subject: str,
    preheader: str,
    blocks: Any,
    template: EmailTemplate | None = None,
) -> dict[str, list[str]]:
    """Per field, what keeps a template from being saved (empty: nothing).

    Shared by the editor and the API so that both refuse the same things."""
    problems: dict[str, list[str]] = {}
    clashes = EmailTemplate.objects.filter(name__iexact=name.strip())
    if template is not None and template.pk is not None:
        clashes = clashes.exclude(pk=template.pk)
    if not name.strip():
        problems["name"] = [_("Give the template a name.")]
    elif clashes.exists():
        problems["name"] = [_("Another template is already called “%(name)s”.") % {"name": name}]
    if not subject.strip():
        problems["subject"] = [_("Give the email a subject.")]
    custom_fields = set(FieldDefinition.objects.values_list("key", flat=True))
    for field_name, text in (("subject", subject), ("preheader", preheader)):
        found = merge_tag_problems(text, custom_fields=custom_fields)
        if found:
            problems.setdefault(field_name, []).extend(found)
    found = blocks_problems(blocks)
    if not found:
        for text in block_texts(blocks):
            found.extend(merge_tag_problems(text, custom_fields=custom_fields))
    if found:
        problems["blocks"] = list(dict.fromkeys(found))
    return problems


def _clean(values: dict[str, Any], template: EmailTemplate | None) -> None:
    problems = template_problems(
        name=values["name"],
        subject=values["subject"],
        preheader=values.get("preheader", ""),
        blocks=values.get("blocks", []),
        template=template,
    )
    if problems:
        raise TemplateInvalid(problems)


def _name_taken(name: str) -> TemplateInvalid:
    return TemplateInvalid(
        {"name": [_("Another template is already called “%(name)s”.") % {"name": name}]}
    )


def template_create(
    *,
    name: str,
    subject: str,
    preheader: str = "",
    sender: Sender | None = None,
    kind: str = EmailKind.MARKETING,
    blocks: list[Any] | None = None,
    created_by: User | None = None,
) -> EmailTemplate:
    """A new template, checked first (``TemplateInvalid`` names what is wrong)."""
    values = {
        "name": name.strip(),
        "subject": subject,
        "preheader": preheader,
        "sender": sender,
        "kind": kind,
        "blocks": blocks or [],
    }
    _clean(values, None)
    try:
        with transaction.atomic():
            return EmailTemplate.objects.create(created_by=created_by, **values)
    except IntegrityError:
        # Two saves of the same name at once: the unique index decides.
        raise _name_taken(name) from None


def template_update(*, template: EmailTemplate, **changes: Any) -> EmailTemplate:
    """Change a template's fields (any of ``TEMPLATE_FIELDS``), checked first; the
    revision moves so that sends after this one use the new content."""
    unknown = set(changes) - set(TEMPLATE_FIELDS)
    if unknown:
        raise TypeError(f"unknown template fields: {sorted(unknown)}")
    values = {name: getattr(template, name) for name in TEMPLATE_FIELDS}
    values.update(changes)
    values["name"] = str(values["name"]).strip()
    _clean(values, template)
    for name, value in values.items():
        setattr(template, name, value)
    template.revision = F("revision") + 1
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError:
        raise _name_taken(values["name"]) from None
    template.refresh_from_db()
    return template


def template_delete(*, template: EmailTemplate) -> None:
    template.delete()


def template_preview(
    *, template: EmailTemplate, lead: Lead, postal_address: str | None = None
) -> RenderedEmail:
    """The email this lead would get, as the editor shows it: the footer of a
    marketing email with a link that unsubscribes nobody, no tracking."""
    if postal_address is None:
        postal_address = email_settings_get().postal_address
    return email_render(
        template=template,
        lead=lead,
        unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL,
        postal_address=postal_address,
    )


def sender_address(sender: Sender | None) -> str:
    """The From header of a sender (the default address when there is none)."""
    if sender is None:
        return str(settings.DEFAULT_FROM_EMAIL)
    return formataddr((sender.name, sender.address))


def template_test_send(*, template: EmailTemplate, lead: Lead, user: User) -> RenderedEmail:
    """Send the template as this lead would get it to the user's own address,
    through Django's mail backend, its subject starting with "[Test]"."""
    if not user.email:
        raise ValueError(_("Your account has no email address to send a test to."))
    rendered = template_preview(template=template, lead=lead)
    message = EmailMultiAlternatives(
        subject=f"[Test] {rendered.subject}",
        body=rendered.text,
        from_email=sender_address(template.sender),
        to=[user.email],
        reply_to=[template.sender.reply_to]
        if template.sender and template.sender.reply_to
        else None,
    )
    message.attach_alternative(rendered.html, "text/html")
    message.send()
    return rendered


# --- senders and settings -----------------------------------------------------------


class SenderInUse(Exception):
    pass


def sender_create(*, name: str, address: str, reply_to: str = "") -> Sender:
    return Sender.objects.create(
        name=name.strip(), address=address.strip().lower(), reply_to=reply_to
    )


def sender_delete(*, sender: Sender) -> None:
    """Remove a sender no template uses (``SenderInUse`` names them otherwise)."""
    try:
        sender.delete()
    except ProtectedError:
        names = ", ".join(sorted(t.name for t in sender.templates.all()[:5]))
        raise SenderInUse(
            _(
                "Templates still send from this address: %(names)s. "
                "Choose another sender there first."
            )
            % {"names": names}
        ) from None


def email_settings_get() -> EmailSettings:
    """The one row of email settings (made with its defaults when missing)."""
    found = EmailSettings.objects.order_by("pk").first()
    if found is not None:
        return found
    return EmailSettings.objects.create()


EMAIL_SETTINGS_FIELDS = (
    "postal_address",
    "sends_per_minute",
    "frequency_cap",
    "frequency_period",
    "send_window_start",
    "send_window_end",
    "require_double_opt_in",
)


@transaction.atomic
def email_settings_update(**changes: Any) -> EmailSettings:
    unknown = set(changes) - set(EMAIL_SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"unknown email settings: {sorted(unknown)}")
    current = email_settings_get()
    current = EmailSettings.objects.select_for_update().get(pk=current.pk)
    for name, value in changes.items():
        setattr(current, name, value)
    current.save(update_fields=[*changes, "updated_at"])
    return current


# --- sends that need an admin: the held sends page ---------------------------------


class SendActionRefused(Exception):
    """The send cannot take this action (any more): in words for the admin."""


def _send_for_action(*, send_id: int, action: str) -> EmailSend:
    """The send, locked, if ``action`` is one it offers now; a drain that claimed
    it meanwhile has it ``sending`` and the action is refused."""
    send = EmailSend.objects.select_for_update().filter(pk=send_id).first()
    if send is None:
        raise SendActionRefused(_("The email is no longer there."))
    if action not in send_actions(status=send.status, held_for=send.held_for):
        raise SendActionRefused(
            _("Nothing was changed: the email's status is now “%(status)s”.")
            % {"status": send.get_status_display()}
        )
    return send


@transaction.atomic
def email_send_retry(*, send_id: int) -> EmailSend:
    """Try a failed send again now, with its tries counted afresh. It is claimed
    like any due send, so the rules at send time decide again (an address that
    unsubscribed meanwhile is skipped)."""
    send = _send_for_action(send_id=send_id, action=RETRY)
    send.status, send.attempts, send.claimed_at = SendStatus.QUEUED, 0, None
    send.next_attempt_at = timezone.now()
    send.save(update_fields=["status", "attempts", "claimed_at", "next_attempt_at"])
    transaction.on_commit(email_sends_kick)
    return send


@transaction.atomic
def email_send_now(*, send_id: int) -> EmailSend:
    """Send a send held for the send window now, outside the window; consent,
    suppression and the frequency cap still apply when it is claimed."""
    send = _send_for_action(send_id=send_id, action=SEND_NOW)
    send.status, send.send_window_waived = SendStatus.QUEUED, True
    send.reason, send.held_for = "", ""
    send.next_attempt_at = timezone.now()
    send.save(
        update_fields=["status", "send_window_waived", "reason", "held_for", "next_attempt_at"]
    )
    transaction.on_commit(email_sends_kick)
    return send


@transaction.atomic
def email_send_cancel(*, send_id: int, user: User) -> EmailSend:
    """Never send it: skipped, with who cancelled it as the reason."""
    send = _send_for_action(send_id=send_id, action=CANCEL)
    send.status, send.held_for = SendStatus.SKIPPED, ""
    send.reason = (_("cancelled by %(user)s") % {"user": user.get_username()})[:300]
    send.claimed_at = send.next_attempt_at = None
    send.save(update_fields=["status", "held_for", "reason", "claimed_at", "next_attempt_at"])
    return send

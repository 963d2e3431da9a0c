"""Senders, templates, the team's email settings and the outbox.

A template's body is a list of blocks (heading, text, button, image, columns, …),
rendered to responsive HTML and a plain-text part; merge tags are filled per lead."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class Sender(models.Model):
    """An address marketing email may come from, set up by an admin."""

    name = models.CharField(max_length=120)
    address = models.EmailField(max_length=254, unique=True)
    reply_to = models.EmailField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>"


class EmailKind(models.TextChoices):
    # Marketing email needs consent and carries the unsubscribe link; a
    # transactional one (a confirmation, a note to a rep) does not.
    MARKETING = "marketing", _("Marketing")
    TRANSACTIONAL = "transactional", _("Transactional")


class EmailTemplate(models.Model):
    """An email a flow can send: subject, preheader, sender and a body of blocks."""

    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=300)
    preheader = models.CharField(max_length=300, blank=True)
    sender = models.ForeignKey(
        Sender, null=True, blank=True, on_delete=models.PROTECT, related_name="templates"
    )
    kind = models.CharField(max_length=14, choices=EmailKind.choices, default=EmailKind.MARKETING)
    blocks = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Moves on every save: the key of the compiled HTML kept between sends.
    revision = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="email_template_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class FrequencyPeriod(models.TextChoices):
    DAY = "day", _("per day")
    WEEK = "week", _("per week")


class EmailSettings(models.Model):
    """One row: what every marketing email needs (the postal address of its
    footer), how fast and how often email goes out, and the consent rule."""

    postal_address = models.TextField(blank=True)
    # The instance's sending rate; what is over it waits, it is not dropped.
    sends_per_minute = models.PositiveIntegerField(default=600)
    # At most this many marketing emails per lead per period (0: no cap).
    frequency_cap = models.PositiveIntegerField(default=3)
    frequency_period = models.CharField(
        max_length=4, choices=FrequencyPeriod.choices, default=FrequencyPeriod.WEEK
    )
    # An optional window in the lead's time zone; outside it sends wait.
    send_window_start = models.TimeField(null=True, blank=True)
    send_window_end = models.TimeField(null=True, blank=True)
    require_double_opt_in = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "email settings"

    def __str__(self) -> str:
        return "email settings"


class OutboxMessage(models.Model):
    """An email as it would have gone out, kept by the embedded default's mail
    backend when no provider is configured: the "Sent emails" page reads these."""

    from_email = models.CharField(max_length=400)
    to = models.JSONField(default=list)
    subject = models.CharField(max_length=998)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    message_id = models.CharField(max_length=400, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["message_id"], name="outbox_message_id_idx")]

    def __str__(self) -> str:
        return self.subject


class SendStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    # Waiting for its time: the rate, the lead's frequency cap, the send window,
    # or a setting an admin must fill in (the reason says which).
    HELD = "held", _("Held")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class HoldReason(models.TextChoices):
    """What a held send waits for; the held sends page words it and offers what
    an admin may do about it (``emails.rules.held_send_actions``)."""

    POSTAL_ADDRESS = "address", _("the sender's postal address is missing")
    SEND_WINDOW = "window", _("waiting for the send window in the lead's time zone")
    FREQUENCY_CAP = "cap", _("the lead reached the limit of marketing emails")
    RATE = "rate", _("the sending rate per minute is reached")


class EmailSend(models.Model):
    """One email to one lead, recorded before it goes out under a unique key
    (``step:<steprun id>`` for a flow's step), and sent by its own task.

    ``sending`` is committed before the provider is called: a sender that dies
    after that leaves the row to the next claim, which decides by the backend
    whether it may send again (``emails.sending``). The flow and node are plain
    columns: emails sits below flows."""

    key = models.CharField(max_length=200, unique=True)
    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="email_sends")
    template = models.ForeignKey(
        EmailTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="sends"
    )
    kind = models.CharField(max_length=14, choices=EmailKind.choices)
    subject_override = models.CharField(max_length=300, blank=True)
    flow_id = models.PositiveIntegerField(null=True, blank=True)
    node_id = models.CharField(max_length=64, blank=True)
    # The address it went to, as it was when sent.
    to_email = models.EmailField(max_length=254, blank=True)
    status = models.CharField(max_length=8, choices=SendStatus.choices, default=SendStatus.QUEUED)
    # Why it is skipped or held, in words an admin reads.
    reason = models.CharField(max_length=300, blank=True)
    # Which rule holds it (blank unless held): the page's words and actions.
    held_for = models.CharField(max_length=8, choices=HoldReason.choices, blank=True)
    # An admin chose "send now" for a send waiting for the window: it goes
    # outside it (the other rules still apply).
    send_window_waived = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    # Ours, without the angle brackets; fixed when the row is made, the same on
    # every try, so a receiver can drop a repeat by it.
    message_id = models.CharField(max_length=255, unique=True)
    provider = models.CharField(max_length=40, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    # The random part of the open pixel's and the tracked links' URLs.
    token = models.CharField(max_length=32, unique=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="emailsend_due_idx",
                condition=models.Q(status__in=["queued", "held", "sending"]),
            ),
            models.Index(fields=["flow_id", "node_id"], name="emailsend_node_idx"),
            models.Index(fields=["lead", "sent_at"], name="emailsend_lead_sent_idx"),
            models.Index(fields=["provider_message_id"], name="emailsend_provider_id_idx"),
            # The held sends page: held and failed ones, newest first.
            models.Index(
                fields=["status", "-created_at"],
                name="emailsend_attention_idx",
                condition=models.Q(status__in=["held", "failed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"

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

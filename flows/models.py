"""Flows: a draft graph, immutable published versions, the subscriptions that
route events to triggers, and the run records (enrollments, step runs, wake-ups,
deliveries). See DESIGN.md for the exactly-once keys."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class FlowStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    ARCHIVED = "archived", _("Archived")


class Reentry(models.TextChoices):
    ONCE = "once", "Once per lead"
    ALWAYS = "always", "Every time"
    DAYS = "days", "At most once per N days"


def empty_graph() -> dict[str, list[Any]]:
    return {"nodes": [], "edges": []}


class Flow(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=FlowStatus.choices, default="draft")
    reentry = models.CharField(max_length=10, choices=Reentry.choices, default="once")
    reentry_days = models.PositiveIntegerField(null=True, blank=True)
    draft = models.JSONField(default=empty_graph)
    # Bumped on every draft save, so two editors cannot silently overwrite each other.
    draft_revision = models.PositiveIntegerField(default=0)
    published = models.ForeignKey(
        "FlowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Two flows named alike ("Welcome", "welcome") cannot be told apart in
            # the list, the score breakdown or the review.
            models.UniqueConstraint(Lower("name"), name="flow_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class FlowVersion(models.Model):
    """A published graph. Never edited: enrollments run on the version they began on."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="flowversion_unique"),
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.flow_id} v{self.number}"


class TriggerSubscription(models.Model):
    """Routes events to a published version's trigger node: matching an event is
    one indexed lookup of (event type, match key) instead of a scan of all flows."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="subscriptions")
    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="+")
    node_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=40)
    # A segment id, an event name …, or "" for every event of the type.
    match_key = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [models.Index(fields=["event_type", "match_key"], name="subscription_route_idx")]

    def __str__(self) -> str:
        return f"{self.event_type}:{self.match_key} → {self.flow_id}/{self.node_id}"


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Running"
    WAITING = "waiting", "Waiting"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class Enrollment(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="enrollments")
    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="enrollments")
    # No index of its own: (lead, flow, created_at) serves every read by lead.
    lead = models.ForeignKey(
        "leads.Lead", on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    # No constraint in the database: on PostgreSQL the events table is partitioned
    # by month, and a foreign key would have to name the partition key too. Django
    # still sets it to null when an event is deleted; a dropped month of events
    # releases it through leads.services.partitions.event_references_register.
    trigger_event = models.ForeignKey(
        "leads.Event",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    trigger_node = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=EnrollmentStatus.choices, default="active")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "lead", "trigger_event"], name="enrollment_once_per_event"
            ),
        ]
        indexes = [
            models.Index(fields=["lead", "flow", "-created_at"], name="enrollment_lead_idx"),
            # A lead's unfinished enrollments, looked up for every event (waits
            # listening for it): few rows however long the lead's history.
            models.Index(
                fields=["lead"],
                name="enrollment_open_idx",
                condition=Q(status__in=["active", "waiting"]),
            ),
            # The dashboard's most active flows: enrollments of the last days by
            # flow, from the index alone.
            models.Index(fields=["created_at"], name="enrollment_created_idx", include=["flow"]),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id} in {self.flow_id}"


class StepStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    WAITING = "waiting", "Waiting"
    # An action that raised: retried by a wake-up with backoff, then failed.
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"


class StepRun(models.Model):
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="steps")
    node_id = models.CharField(max_length=64)
    node_type = models.CharField(max_length=64)
    # How many times this enrollment reached this node before (loops are refused
    # at publish, but a node can be reached along two paths).
    visit = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=StepStatus.choices)
    attempts = models.PositiveSmallIntegerField(default=1)
    output = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["enrollment", "node_id", "visit"], name="steprun_once"),
        ]

    def __str__(self) -> str:
        return f"{self.enrollment_id}/{self.node_id}#{self.visit}"


class Wakeup(models.Model):
    """A waiting step's alarm: beat claims due rows (SKIP LOCKED) and resumes them."""

    step = models.OneToOneField(StepRun, on_delete=models.CASCADE, related_name="wakeup")
    due_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The flow is paused or archived: the wake-up waits for it to be resumed.
    # Kept on the row so that claiming is a walk of one index in due order.
    held = models.BooleanField(default=False, db_default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["due_at"],
                name="wakeup_due_idx",
                condition=Q(claimed_at__isnull=True, held=False),
            ),
            # Claims that went stale (a lost message) are found without a scan.
            models.Index(
                fields=["claimed_at"],
                name="wakeup_claimed_idx",
                condition=Q(claimed_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} at {self.due_at}"


class DeliveryKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack message"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class HookSubscription(models.Model):
    """An outside URL subscribed to event types (REST hooks: Zapier, n8n, a CRM
    sync). Each matching event is one Delivery, signed with this secret."""

    target_url = models.URLField(max_length=2000)
    # Hook event types (``flows.hooks.HOOK_EVENTS``), at least one.
    events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    # Signs every delivery (HMAC-SHA256); shown once, when the subscription is made.
    secret = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{', '.join(self.events)} → {self.target_url}"


class Delivery(models.Model):
    """Something sent out of Leadflow. Written in the step's transaction under a
    unique key, sent by its own task, retried with backoff, marked sent.

    A sender claims the row in a short transaction (``claimed_at``), sends with no
    transaction open and records the outcome in a second one. A row marked sent is
    never sent again; a sender that dies between sending and recording leaves a
    claim that expires, and the row is sent again: at least once for the receiver,
    which gets the key as ``Idempotency-Key`` to drop the repeat."""

    kind = models.CharField(max_length=10, choices=DeliveryKind.choices)
    key = models.CharField(max_length=200, unique=True)
    step = models.ForeignKey(
        StepRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    # A REST hook's delivery: unsubscribing drops what it had not sent yet.
    hook = models.ForeignKey(
        HookSubscription,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    target = models.CharField(max_length=2000)
    payload = models.JSONField(default=dict)
    # The step waits for this delivery before its enrollment goes on.
    blocking = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default="pending")
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # While pending: when beat should send it (a retry, or a claim that expired).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set while a sender has it in flight.
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due_idx",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from core.vocabulary import EngagementGrade, FitGrade, Grade


class Stage(models.TextChoices):
    SUBSCRIBER = "subscriber", _("Subscriber")
    LEAD = "lead", _("Lead")
    MQL = "mql", _("Marketing qualified")
    SQL = "sql", _("Sales qualified")
    OPPORTUNITY = "opportunity", _("Opportunity")
    CUSTOMER = "customer", _("Customer")
    LOST = "lost", _("Lost")
    DISQUALIFIED = "disqualified", _("Disqualified")


# Stages past which a lead is no longer worked as a prospect: never graded hot,
# no new sales follow-ups, open ones closed.
CLOSED_STAGES = frozenset({Stage.CUSTOMER, Stage.LOST, Stage.DISQUALIFIED})


class LeadSource(models.TextChoices):
    """The channel a lead came from: from the campaign (UTM) fields and referrer of
    its first page view, an import or a form; editable."""

    ORGANIC = "organic", _("Organic search")
    PAID = "paid", _("Paid")
    SOCIAL = "social", _("Social")
    EMAIL = "email", _("Email")
    REFERRAL = "referral", _("Referral")
    DIRECT = "direct", _("Direct")
    EVENT = "event", _("Event / trade fair")
    IMPORT = "import", _("Import")
    FORM = "form", _("Form")
    API = "api", _("API")
    OTHER = "other", _("Other")


class ConsentState(models.TextChoices):
    """A lead's consent to marketing email. With double opt-in required, only
    ``confirmed`` leads receive marketing email."""

    UNKNOWN = "unknown", _("Unknown")
    PENDING = "pending", _("Pending confirmation")
    CONFIRMED = "confirmed", _("Confirmed")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class ConsentSource(models.TextChoices):
    FORM = "form", _("Form")
    IMPORT = "import", _("Import")
    API = "api", _("API")
    CONFIRMATION = "confirmation", _("Confirmation link")
    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe link")
    USER = "user", _("Changed by a user")


class Tag(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FieldType(models.TextChoices):
    TEXT = "text", _("Text")
    NUMBER = "number", _("Number")
    DATE = "date", _("Date")
    BOOLEAN = "boolean", _("Boolean")
    CHOICE = "choice", _("Choice")


class FieldDefinition(models.Model):
    """A custom lead field. Values live in ``Lead.custom_fields`` under ``key``."""

    key = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=120)
    type = models.CharField(max_length=16, choices=FieldType.choices)
    options = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class Lead(models.Model):
    # Stored lower-cased (a check constraint holds it), so the plain unique
    # constraint is the case-insensitive one and bulk upserts can target it.
    email = models.EmailField(max_length=254, null=True, blank=True, unique=True)
    external_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    first_name = models.CharField(max_length=120, blank=True)
    last_name = models.CharField(max_length=120, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    job_title = models.CharField(max_length=200, blank=True)
    company_name = models.CharField(max_length=200, blank=True)
    company_size = models.PositiveIntegerField(null=True, blank=True)
    industry = models.CharField(max_length=120, blank=True)
    country = models.CharField(max_length=120, blank=True)
    city = models.CharField(max_length=120, blank=True)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.SUBSCRIBER)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_leads",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="leads")
    unsubscribed = models.BooleanField(default=False)
    # Marketing consent and when it last changed; the evidence is ConsentRecord.
    consent_state = models.CharField(
        max_length=10,
        choices=ConsentState.choices,
        default=ConsentState.UNKNOWN,
        db_default=ConsentState.UNKNOWN,
    )
    consent_changed_at = models.DateTimeField(null=True, blank=True)
    # A hard bounce: the address does not exist; no more marketing email to it.
    email_bounced_at = models.DateTimeField(null=True, blank=True)
    # The language emails and pages for the lead use ("de", "en"; blank: the
    # site's default) and its IANA time zone (blank: the site's).
    language = models.CharField(max_length=8, blank=True, db_default="")
    time_zone = models.CharField(max_length=64, blank=True, db_default="")
    # Sums of the score ledger (scoring.ScoreChange), kept in the same transaction.
    score = models.IntegerField(default=0)
    grade = models.CharField(
        max_length=8,
        choices=Grade.choices,
        default=Grade.COLD,
    )
    # The two axes: fit A to D (who the lead is) and engagement 1 to 4 (what it does),
    # from scoring's thresholds; shown together as "A1" … "D4".
    fit_grade = models.CharField(
        max_length=1, choices=FitGrade.choices, default=FitGrade.D, db_default=FitGrade.D
    )
    engagement_grade = models.CharField(
        max_length=1,
        choices=EngagementGrade.choices,
        default=EngagementGrade.FOUR,
        db_default=EngagementGrade.FOUR,
    )
    source = models.CharField(max_length=12, choices=LeadSource.choices, blank=True)
    # The campaign, referrer host, import file or form the source was read from.
    source_detail = models.CharField(max_length=200, blank=True)
    # When the lead first reached each stage of its lifecycle (kept when it moves on).
    mql_at = models.DateTimeField(null=True, blank=True)
    sql_at = models.DateTimeField(null=True, blank=True)
    opportunity_at = models.DateTimeField(null=True, blank=True)
    customer_at = models.DateTimeField(null=True, blank=True)
    lost_at = models.DateTimeField(null=True, blank=True)
    disqualified_at = models.DateTimeField(null=True, blank=True)
    # The score when the lead became an opportunity (or a customer, whichever came
    # first): what the model said before sales acted, for the review's AUC.
    qualified_score = models.IntegerField(null=True, blank=True)
    custom_fields = models.JSONField(default=dict, blank=True)
    # Segment traits with no matching field: kept, never reported as errors.
    raw_traits = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(email=Lower("email")), name="lead_email_lowercase"),
        ]
        indexes = [
            models.Index(fields=["stage"], name="lead_stage_idx"),
            models.Index(fields=["created_at"], name="lead_created_idx"),
            models.Index(fields=["last_activity_at"], name="lead_activity_idx"),
            models.Index(fields=["score"], name="lead_score_idx"),
            models.Index(fields=["fit_grade", "engagement_grade"], name="lead_rating_idx"),
            models.Index(fields=["mql_at"], name="lead_mql_at_idx"),
            # The dashboard's count of hot leads (a user's, or the team's) from
            # this index alone; one lead in six is hot in a typical account.
            models.Index(fields=["owner"], name="lead_hot_owner_idx", condition=Q(grade=Grade.HOT)),
            # The scoring review's month: few leads have these dates, so the
            # partial indexes stay small and spare a scan of every lead.
            models.Index(
                fields=["opportunity_at"],
                name="lead_opportunity_at_idx",
                condition=Q(opportunity_at__isnull=False),
            ),
            models.Index(
                fields=["customer_at"],
                name="lead_customer_at_idx",
                condition=Q(customer_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.external_id or f"anonymous #{self.pk}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def rating(self) -> str:
        """Fit and engagement as one badge: "A1" … "D4"."""
        return f"{self.fit_grade}{self.engagement_grade}"

    @property
    def is_anonymous(self) -> bool:
        return not self.email and not self.external_id


class IdentityKind(models.TextChoices):
    ANONYMOUS_ID = "anonymous_id", "Anonymous id"
    # Former or extra user ids and emails of a lead (after a merge or an alias).
    USER_ID = "user_id", "User id"
    EMAIL = "email", "Email"


class Identity(models.Model):
    """An identifier that points at a lead besides its own email and user id: a
    Segment ``anonymousId``, or a former user id or email kept after a merge or an
    alias. Moves with the lead when leads are merged."""

    kind = models.CharField(max_length=20, choices=IdentityKind.choices)
    value = models.CharField(max_length=255)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="identities")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="identity_unique"),
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class Event(models.Model):
    """Everything that happens to a lead, and the outbox of work: a row with
    ``processed_at`` unset still has to be applied by a worker."""

    # No index of its own: the timeline's (lead, -occurred_at) serves every
    # read by lead, and each index is a write on the busiest insert there is.
    lead = models.ForeignKey(
        Lead,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
    )
    type = models.CharField(max_length=40)
    name = models.CharField(max_length=255, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    # Who the event is about, as the sender named them; resolved to ``lead`` by
    # the worker (a new identifier creates a lead, an identify may merge two).
    user_id = models.CharField(max_length=255, blank=True)
    anonymous_id = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=254, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    source = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=255)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The sweeper leaves the event alone until then: a failed event backs off, a
    # re-enqueued one gets time to reach a worker before it is enqueued again.
    retry_at = models.DateTimeField(null=True, blank=True)
    # How often and when beat's sweeper last sent the event again, to space the
    # re-sends and to tell whether the last message may still be queued. A default in the
    # database too, so raw multi-row inserts need not name it.
    resends = models.PositiveSmallIntegerField(default=0, db_default=0)
    resent_at = models.DateTimeField(null=True, blank=True)
    # How many derived events led here; a chain past the limit is stopped.
    depth = models.PositiveSmallIntegerField(default=0)

    class Meta:
        # On PostgreSQL (migration 0023) the table is partitioned by month of
        # ``occurred_at``, its primary key is (id, occurred_at) and this
        # constraint is not in the database: ``EventKey`` keeps keys unique there.
        constraints = [
            models.UniqueConstraint(fields=["source", "idempotency_key"], name="event_idempotency"),
        ]
        indexes = [
            models.Index(fields=["lead", "-occurred_at"], name="event_timeline_idx"),
            models.Index(fields=["type", "name", "occurred_at"], name="event_type_name_idx"),
            models.Index(
                fields=["received_at"],
                name="event_unprocessed_idx",
                condition=Q(processed_at__isnull=True),
            ),
            # The dashboard's MQL and hot-lead counts by day: an index-only scan
            # over the few score and grade events, instead of visiting a heap
            # page for nearly every one of them.
            models.Index(
                fields=["occurred_at"],
                name="event_score_grade_idx",
                include=["type", "lead", "name", "properties"],
                condition=Q(type__in=["score.changed", "grade.changed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.name}".strip()


class EventKey(models.Model):
    """The (source, idempotency key) of every event recorded on PostgreSQL.

    There the events table is partitioned by month of ``occurred_at``, and a
    unique index on a partitioned table must hold the partition key, so it can
    no longer say "one event per key" across months: the same email open from
    the pixel and from the provider's webhook can carry different times.
    ``events_record`` claims the key here first and inserts only the events
    whose key was new, in one statement. The events of a segment's stays
    (``segments.check``) claim none: each is keyed by its stay, which the
    statement that writes it has just opened or closed. SQLite keeps the plain
    table with its unique constraint and leaves this one empty. ``received_at`` lets the
    retention of ``manage.py events_partitions`` forget keys with their events.
    """

    source = models.CharField(max_length=40)
    idempotency_key = models.CharField(max_length=255)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "idempotency_key"], name="event_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.idempotency_key}"


class ApiScope(models.TextChoices):
    INGEST = "ingest", "Ingest (events and identify only)"
    FULL = "full", "Full API access"


class ApiKey(models.Model):
    """A machine credential. Only a SHA-256 of the key is stored; the prefix is
    kept in clear to find the row and to show which key is which."""

    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=10, choices=ApiScope.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ImportStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class LeadImport(models.Model):
    """A CSV import of leads: the uploaded file, its column mapping and the outcome."""

    file = models.FileField(upload_to="imports/")
    original_name = models.CharField(max_length=255)
    mapping = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default="pending")
    rows_total = models.PositiveIntegerField(default=0)
    rows_created = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    # [{"row": 12, "error": "..."}], capped so a broken file cannot bloat the row.
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Running it: when it was handed to the workers (its columns mapped), the
    # worker's claim (renewed with each batch; an old one belonged to a worker
    # that died), how many runs took it, and the last CSV row (as a spreadsheet
    # numbers it) whose batch is committed, where a later run goes on.
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    rows_position = models.PositiveIntegerField(default=0, db_default=0)
    # Beat's re-sends of its message, spaced further apart each time.
    resends = models.PositiveSmallIntegerField(default=0, db_default=0)
    resent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"


class Heartbeat(models.Model):
    """Last time a periodic task ran: proof for /healthz that beat and a worker live."""

    name = models.CharField(max_length=40, primary_key=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", "Dynamic (by conditions)"
    STATIC = "static", "Static (by hand or import)"


class Segment(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=SegmentKind.choices, default="dynamic")
    conditions = models.JSONField(default=dict, blank=True)
    # Rules relative to now ("in the last 30 days") change without any event:
    # such segments are recomputed by beat.
    time_relative = models.BooleanField(default=False)
    member_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    # When a recompute was last asked for: until ``last_refreshed_at`` passes it,
    # the segment's page shows the refresh as running.
    refresh_requested_at = models.DateTimeField(null=True, blank=True)
    # Beat's re-sends of a requested refresh whose message was lost.
    refresh_resends = models.PositiveSmallIntegerField(default=0, db_default=0)
    refresh_resent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def refreshing(self) -> bool:
        if self.refresh_requested_at is None:
            return False
        return self.last_refreshed_at is None or self.last_refreshed_at < self.refresh_requested_at


class MembershipSource(models.TextChoices):
    CONDITION = "condition", "Conditions"
    MANUAL = "manual", "Added by hand"
    IMPORT = "import", "Imported"


class SegmentMembership(models.Model):
    """One stay of a lead in a segment: open while ``left_at`` is null. A lead that
    leaves and comes back has a row per stay, which is its history."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    # No index of its own: (lead, segment) below serves every read by lead.
    lead = models.ForeignKey(
        Lead, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=MembershipSource.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "lead"],
                condition=Q(left_at__isnull=True),
                name="membership_one_open_stay",
            ),
        ]
        indexes = [
            models.Index(fields=["lead", "segment"], name="membership_lead_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id} in {self.segment_id}"


class SegmentExclusion(models.Model):
    """A lead taken out of a dynamic segment by hand: it stays out, whatever its
    conditions say, until it is included again."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="exclusions")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="segment_exclusions")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "lead"], name="exclusion_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id} kept out of {self.segment_id}"


class TaskPriority(models.TextChoices):
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


class TaskStatus(models.TextChoices):
    OPEN = "open", _("Open")
    DONE = "done", _("Done")
    # Closed without being done: the lead became a customer, lost or disqualified.
    CLOSED = "closed", _("Closed")


class Task(models.Model):
    """Something a sales rep should do about a lead."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="tasks")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
    )
    title = models.CharField(max_length=255)
    due_at = models.DateTimeField(null=True, blank=True)
    priority = models.CharField(max_length=8, choices=TaskPriority.choices, default="normal")
    status = models.CharField(max_length=6, choices=TaskStatus.choices, default="open")
    # ``step:<steprun id>`` for a task a flow created: one per step, ever.
    source_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    # A sales follow-up a flow asked for (notify sales): closed when the lead
    # leaves the running (customer, lost, disqualified).
    follow_up = models.BooleanField(default=False, db_default=False)
    closed_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["assignee", "status", "due_at"], name="task_queue_idx")]

    def __str__(self) -> str:
        return self.title


class Notification(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.CASCADE)
    message = models.CharField(max_length=500)
    source_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "read_at"], name="notification_inbox_idx")]

    def __str__(self) -> str:
        return self.message


class UserPreference(models.Model):
    """A user's own settings. ``language`` blank means the browser's language."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, blank=True)
    # The leads list's columns (``leads.columns`` keys) in their order; null until
    # the user chooses, which means the default columns.
    lead_columns = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language or 'browser'}"


class IntegrationSettings(models.Model):
    """One row: the team's connections to other services, set by an admin on
    Settings → Integrations."""

    slack_webhook_url = models.URLField(max_length=500, blank=True)
    # Identity verification for ingest keys: the HMAC key of the user hashes
    # your server puts beside the website snippet. Kept in clear (it signs, it
    # does not log in); shown once when made.
    identity_secret = models.CharField(max_length=64, blank=True)
    identity_secret_created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "integration settings"

    def __str__(self) -> str:
        return "integration settings"


class Note(models.Model):
    """Something a person wrote about a lead (a call, a meeting), shown on its profile."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="lead_notes",
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["lead", "-created_at"], name="note_lead_idx")]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.body[:40]}"


class ConsentRecord(models.Model):
    """The evidence of one change of a lead's marketing consent: what it became,
    when, from where, and what the person agreed to. Kept for the privacy export
    and for the proof a double opt-in needs."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="consent_records")
    state = models.CharField(max_length=10, choices=ConsentState.choices)
    source = models.CharField(max_length=12, choices=ConsentSource.choices)
    # Where, in words: the form's name, the import's file, the API key's name.
    source_detail = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    # The sentence the person agreed to, as shown to them.
    wording = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # A pending request's double opt-in email: taken by a worker (``claimed``)
    # before the send, ``sent`` after it. A claim that never became a send (a
    # worker killed in between) is taken again after a while.
    confirmation_claimed_at = models.DateTimeField(null=True, blank=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["lead_id", "occurred_at", "id"]
        indexes = [
            models.Index(fields=["lead", "occurred_at"], name="consent_lead_time_idx"),
            # The sweeper's look for confirmation emails still to send: a few rows.
            models.Index(
                fields=["created_at"],
                name="consent_unconfirmed_idx",
                condition=Q(state="pending", confirmation_sent_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.state} ({self.source})"


class LeadErasure(models.Model):
    """The record that a lead was erased, kept without anything about the person:
    the lead's former id, who erased it, when, and how many rows went."""

    lead_ref = models.PositiveBigIntegerField()
    erased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "web", "api" or "command": where the erasure was asked for.
    via = models.CharField(max_length=10)
    rows = models.JSONField(default=dict)
    erased_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"lead #{self.lead_ref} erased {self.erased_at:%Y-%m-%d}"

    @property
    def total_rows(self) -> int:
        """Rows removed, the lead's own included."""
        rows: dict[str, int] = self.rows
        return sum(rows.values()) + 1


class JobStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for a worker")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class JobKind(models.TextChoices):
    EXPORT = "export", _("CSV export")
    BULK = "bulk", _("Bulk change")


class LeadJob(models.Model):
    """Work on a leads-list filter too big for one request (a CSV export, a bulk
    change of every matching lead): a worker does it, counting leads as it goes,
    and the page shows the progress."""

    kind = models.CharField(max_length=10, choices=JobKind.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lead_jobs"
    )
    # The list's filter (``LeadFilters`` as a dict) and sort, and the query string
    # that shows the same list. The leads are those the creator may see when it runs.
    filters = models.JSONField(default=dict)
    sort = models.CharField(max_length=16, blank=True)
    query = models.CharField(max_length=1000, blank=True)
    # A bulk change: which (``owner``, ``tag_add``, …) and its value.
    action = models.CharField(max_length=16, blank=True)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default="pending")
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    rows_changed = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to="exports/", blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The worker's claim (renewed with its progress), how many runs took it, and
    # beat's re-sends of its message (see ``leads.services.background``).
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    resends = models.PositiveSmallIntegerField(default=0, db_default=0)
    resent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == JobStatus.DONE:
            return 100
        return min(99, self.rows_done * 100 // self.rows_total) if self.rows_total else 0

    @property
    def running(self) -> bool:
        return self.status in (JobStatus.PENDING, JobStatus.RUNNING)


class OpportunityStatus(models.TextChoices):
    OPEN = "open", _("Open")
    WON = "won", _("Won")
    LOST = "lost", _("Lost")


class Opportunity(models.Model):
    """A deal with a lead: its value, and how it ended (won or lost, when, why)."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="opportunities")
    name = models.CharField(max_length=200, blank=True)
    value = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(
        max_length=4, choices=OpportunityStatus.choices, default=OpportunityStatus.OPEN
    )
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    lost_reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # ``step:<steprun id>`` when a flow opened it: one per step, ever.
    source_key = models.CharField(max_length=200, unique=True, null=True, blank=True)

    class Meta:
        verbose_name_plural = "opportunities"
        indexes = [
            models.Index(fields=["lead", "-opened_at"], name="opportunity_lead_idx"),
            models.Index(fields=["status", "closed_at"], name="opportunity_closed_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(value__gte=0), name="opportunity_value_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.lead_id}: {self.value} {self.currency} ({self.status})"

"""The score ledger. ``ScoreChange`` rows are the source of truth; ``Lead.score``,
``Lead.grade`` and ``LeadScore`` (per category) are kept equal to their sums in
the same transaction as each row (``manage.py scoring_verify`` checks it)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class DecayMode(models.TextChoices):
    NONE = "none", _("No decay")
    EXPIRE = "expire", _("Points expire after N days")
    PERCENT = "percent", _("A share of the points per period without activity")


class HotRule(models.TextChoices):
    TOTAL = "total", _("Total score at or above the hot threshold")
    AXES = "axes", _("A minimum fit and a minimum engagement")


class Preset(models.TextChoices):
    B2B = "b2b", _("B2B")
    B2C = "b2c", _("B2C")


class ScoreCategory(models.Model):
    """Where points belong: ``fit`` (who they are), ``engagement`` (what they do),
    or a category of the team's own."""

    key = models.SlugField(max_length=40, unique=True)
    label = models.CharField(max_length=80)
    builtin = models.BooleanField(default=False)
    # Points past the cap are written to the ledger but not counted (``capped``).
    cap = models.PositiveIntegerField(null=True, blank=True)
    decay_mode = models.CharField(
        max_length=8, choices=DecayMode.choices, default=DecayMode.NONE, db_default=DecayMode.NONE
    )
    # EXPIRE: points expire this many days after they were earned.
    # PERCENT: the length of a period without activity.
    decay_days = models.PositiveIntegerField(null=True, blank=True)
    # PERCENT: the share of the category's points lost per period without activity.
    decay_percent = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "score categories"

    def __str__(self) -> str:
        return self.key


class ScoringSettings(models.Model):
    """One row: the grade thresholds, the hot rule, the total's cap and the MQL rule."""

    warm_threshold = models.IntegerField(default=20)
    hot_threshold = models.IntegerField(default=50)
    mql_threshold = models.IntegerField(default=50)
    # Reaching the MQL threshold moves a subscriber or lead to MQL.
    mql_moves_stage = models.BooleanField(default=True)
    sales_can_adjust = models.BooleanField(default=True)
    total_cap = models.PositiveIntegerField(null=True, blank=True)
    hot_rule = models.CharField(
        max_length=5, choices=HotRule.choices, default=HotRule.TOTAL, db_default=HotRule.TOTAL
    )
    # HotRule.AXES: hot needs at least this fit grade and this engagement grade.
    hot_min_fit = models.CharField(max_length=1, default="B", db_default="B")
    hot_min_engagement = models.CharField(max_length=1, default="2", db_default="2")
    # Fit A/B/C from the fit category's points (D below C); engagement 1/2/3 from
    # the engagement category's (4 below 3).
    fit_a = models.IntegerField(default=40, db_default=40)
    fit_b = models.IntegerField(default=25, db_default=25)
    fit_c = models.IntegerField(default=10, db_default=10)
    engagement_1 = models.IntegerField(default=60, db_default=60)
    engagement_2 = models.IntegerField(default=30, db_default=30)
    engagement_3 = models.IntegerField(default=10, db_default=10)
    # The preset the install started from (B2B or B2C), if any.
    preset = models.CharField(max_length=3, choices=Preset.choices, blank=True)

    class Meta:
        verbose_name_plural = "scoring settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(hot_threshold__gt=models.F("warm_threshold")),
                name="scoring_hot_above_warm",
            ),
            models.CheckConstraint(
                condition=Q(fit_a__gt=models.F("fit_b"), fit_b__gt=models.F("fit_c")),
                name="scoring_fit_thresholds_ordered",
            ),
            models.CheckConstraint(
                condition=Q(
                    engagement_1__gt=models.F("engagement_2"),
                    engagement_2__gt=models.F("engagement_3"),
                ),
                name="scoring_engagement_thresholds_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"warm ≥ {self.warm_threshold}, hot ≥ {self.hot_threshold}"


class ScoreSource(models.TextChoices):
    FLOW = "flow", "Flow step"
    MANUAL = "manual", "Manual adjustment"
    DECAY = "decay", "Decay"
    EXPIRY = "expiry", "Expiry"
    SYSTEM = "system", "System"


class ScoreChange(models.Model):
    """One change of a lead's score. ``delta`` is what counted; ``capped`` the points
    of the same change a cap kept out (so ``delta + capped`` is what was asked for).
    ``occurred_at`` is when the thing happened (the cause's event time),
    ``created_at`` when it was recorded."""

    # No index of its own: (lead, created_at) and (lead, occurred_at) serve
    # every read by lead.
    lead = models.ForeignKey(
        "leads.Lead", on_delete=models.CASCADE, related_name="score_changes", db_index=False
    )
    delta = models.IntegerField()
    category = models.ForeignKey(ScoreCategory, on_delete=models.PROTECT, related_name="changes")
    reason = models.CharField(max_length=255)
    source = models.CharField(max_length=10, choices=ScoreSource.choices)
    # What caused it, so applying the same cause twice is one row:
    # ``step:<steprun id>``, ``manual:<uuid>``, ``decay:<lead>:<period>``.
    source_key = models.CharField(max_length=200, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    capped = models.IntegerField(default=0, db_default=0)
    # An expiry or a decay offsets what it names (an expiry: the change it expires).
    offsets = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="offset_by"
    )

    class Meta:
        indexes = [
            models.Index(fields=["lead", "-created_at"], name="scorechange_lead_idx"),
            # The profile's timeline and score history; ``delta`` with the key so
            # that the history of a lead's 10,000 changes is read from the index
            # alone, not from 1,900 table pages.
            models.Index(
                fields=["lead", "-occurred_at"],
                name="scorechange_lead_time_idx",
                include=["delta"],
            ),
            # The dashboard's recent changes.
            models.Index(fields=["created_at"], name="scorechange_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.delta:+d} {self.category_id} for {self.lead_id}: {self.reason}"


class LeadScore(models.Model):
    """A lead's points in one category."""

    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="category_scores")
    category = models.ForeignKey(ScoreCategory, on_delete=models.CASCADE, related_name="+")
    score = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lead", "category"], name="leadscore_unique"),
        ]
        indexes = [models.Index(fields=["category", "score"], name="leadscore_rank_idx")]

    def __str__(self) -> str:
        return f"{self.lead_id} {self.category_id}={self.score}"


class ReviewLogEntry(models.Model):
    """A dated change to the scoring model (thresholds, caps, decay, a scoring flow),
    so a month's numbers can be read against the model they were made with."""

    at = models.DateTimeField(default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "settings", "category", "flow", "preset".
    subject = models.CharField(max_length=20)
    summary = models.CharField(max_length=500)
    # What changed: {"field": [before, after], …}.
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "review log entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d} {self.subject}: {self.summary}"

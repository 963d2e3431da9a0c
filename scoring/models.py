"""The score ledger. ``ScoreChange`` rows are the source of truth; ``Lead.score``,
``Lead.grade`` and ``LeadScore`` (per category) are kept equal to their sums in
the same transaction as each row (``manage.py scoring_verify`` checks it)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ScoreCategory(models.Model):
    """Where points belong: ``fit`` (who they are), ``engagement`` (what they do),
    or a category of the team's own."""

    key = models.SlugField(max_length=40, unique=True)
    label = models.CharField(max_length=80)
    builtin = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "score categories"

    def __str__(self) -> str:
        return self.key


class ScoringSettings(models.Model):
    """One row: the grade thresholds and the MQL rule."""

    warm_threshold = models.IntegerField(default=20)
    hot_threshold = models.IntegerField(default=50)
    mql_threshold = models.IntegerField(default=50)
    # Reaching the MQL threshold moves a subscriber or lead to MQL.
    mql_moves_stage = models.BooleanField(default=True)
    sales_can_adjust = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "scoring settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(hot_threshold__gt=models.F("warm_threshold")),
                name="scoring_hot_above_warm",
            )
        ]

    def __str__(self) -> str:
        return f"warm ≥ {self.warm_threshold}, hot ≥ {self.hot_threshold}"


class ScoreSource(models.TextChoices):
    FLOW = "flow", "Flow step"
    MANUAL = "manual", "Manual adjustment"
    DECAY = "decay", "Decay"
    SYSTEM = "system", "System"


class ScoreChange(models.Model):
    lead = models.ForeignKey("leads.Lead", on_delete=models.CASCADE, related_name="score_changes")
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

    class Meta:
        indexes = [
            models.Index(fields=["lead", "-created_at"], name="scorechange_lead_idx"),
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

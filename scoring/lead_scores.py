"""A lead's points per category, read from ``LeadScore``: the expression segment
rules and the leads API compare, and the source leads reads them through
(``leads.category_scores``)."""

from __future__ import annotations

from django.db.models import Expression, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual

from leads.models import Lead
from scoring.models import LeadScore, ScoreCategory


def category_points(key: str) -> Expression:
    """The points of the lead in the outer query in category ``key``; 0 where it
    has none."""
    return Coalesce(
        Subquery(
            LeadScore.objects.filter(lead_id=OuterRef("pk"), category__key=key).values("score")[:1]
        ),
        0,
    )


class LedgerCategoryScores:
    """``leads.category_scores.CategoryScores`` from scoring's tables."""

    def keys(self) -> list[str]:
        return list(ScoreCategory.objects.order_by("id").values_list("key", flat=True))

    def with_points(self, leads: QuerySet[Lead]) -> QuerySet[Lead]:
        return leads.prefetch_related(
            Prefetch("category_scores", LeadScore.objects.select_related("category"))
        )

    def points(self, lead: Lead) -> dict[str, int]:
        rows: QuerySet[LeadScore] = lead.category_scores.all()
        return {row.category.key: row.score for row in rows}

    def points_of(self, key: str) -> Expression:
        return category_points(key)

    def within(self, key: str, low: int | None, high: int | None) -> Q:
        points = category_points(key)
        q = Q()
        if low is not None:
            q &= Q(GreaterThanOrEqual(points, low))
        if high is not None:
            q &= Q(LessThanOrEqual(points, high))
        return q

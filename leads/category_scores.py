"""Points per score category, as the leads API shows and filters them.

The points are scoring's: its ledger keeps them per category. Leads only reads
them, through the source scoring provides from its ``AppConfig.ready``, so leads
never imports scoring. Without a source there are no categories: every lead has
no category points and a filter on a category matches nothing."""

from __future__ import annotations

from typing import Protocol

from django.db.models import Expression, IntegerField, Q, QuerySet, Value

from leads.models import Lead


class CategoryScores(Protocol):
    def keys(self) -> list[str]:
        """The categories' keys, in their order."""
        ...

    def with_points(self, leads: QuerySet[Lead]) -> QuerySet[Lead]:
        """``leads`` with their category points read alongside (one more query
        for any number of leads)."""
        ...

    def points(self, lead: Lead) -> dict[str, int]:
        """A lead's points per category key, from what ``with_points`` read;
        categories where the lead has none are missing."""
        ...

    def within(self, key: str, low: int | None, high: int | None) -> Q:
        """Leads whose points in category ``key`` are at least ``low`` and at
        most ``high`` (either bound None); a lead with none there has 0."""
        ...

    def points_of(self, key: str) -> Expression:
        """The points of the lead in the outer query in category ``key`` (0 where
        it has none), to sort by."""
        ...


class _NoCategories:
    def keys(self) -> list[str]:
        return []

    def with_points(self, leads: QuerySet[Lead]) -> QuerySet[Lead]:
        return leads

    def points(self, lead: Lead) -> dict[str, int]:
        return {}

    def within(self, key: str, low: int | None, high: int | None) -> Q:
        return Q(pk__in=[])

    def points_of(self, key: str) -> Expression:
        return Value(0, output_field=IntegerField())


_source: CategoryScores = _NoCategories()


def category_scores_provide(source: CategoryScores) -> None:
    """Called by scoring at ready: where category points come from."""
    global _source
    _source = source


def category_scores() -> CategoryScores:
    return _source

"""Pages of a model other than the view's own."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import QuerySet
from rest_framework.generics import GenericAPIView

Row = TypeVar("Row")


def page_of_related(view: GenericAPIView[Any], queryset: QuerySet[Any, Row]) -> list[Row] | None:
    """One page of rows that belong to the view's object (a flow's versions, a
    hook's deliveries), paginated as the view paginates its own list.

    The type stubs let a view paginate querysets of its own model only; DRF itself
    takes any queryset, and this is the one place that says so."""
    return view.paginate_queryset(queryset)

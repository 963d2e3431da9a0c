from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

if TYPE_CHECKING:
    # DRF's generics import this module (the default pagination class) while
    # they load, so the view's type is imported for the checker only.
    from django.db.models import QuerySet
    from rest_framework.generics import GenericAPIView

Row = TypeVar("Row")


class IdCursorPagination(CursorPagination):
    """Newest first by id: unique and indexed, so pages are stable and cheap."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        # DRF falls back to the default on a bad value; a client should hear of it.
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        if len(values) > 1 or not values[0].isdigit() or int(values[0]) < 1:
            raise ValidationError(
                {self.page_size_query_param: ["Expected one whole number, 1 or more."]}
            )
        return min(int(values[0]), self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Results per page ({self.page_size} by default, {self.max_page_size} at most)."
                )
        return parameters


def page_of_related(view: GenericAPIView[Any], queryset: QuerySet[Any, Row]) -> list[Row] | None:
    """One page of rows that belong to the view's object (a flow's versions, a
    segment's members), paginated as the view paginates its own list.

    The type stubs let a view paginate querysets of its own model only; DRF itself
    takes any queryset, and this is the one place that says so."""
    return view.paginate_queryset(queryset)

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

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


class OrderedCursorPagination(IdCursorPagination):
    """``ordering``: one of the view's ``ordering_fields`` (``-`` for descending),
    newest first by id by default. Pages are a keyset on (field, id): ties are
    broken by id, so a field that many rows share (a score of 0) pages as surely
    as the id does, with no offset to grow. The cursor is opaque to clients."""

    ordering_param = "ordering"

    def _ordering(self, request: Request, view: Any) -> tuple[str, bool]:
        fields: tuple[str, ...] = getattr(view, "ordering_fields", ("id",))
        values = request.query_params.getlist(self.ordering_param)
        if not values:
            return "id", True
        value = values[0].strip()
        field = value.removeprefix("-")
        if len(values) > 1 or field not in fields:
            choices = ", ".join(f"{name}, -{name}" for name in fields)
            raise ValidationError({self.ordering_param: [f"Expected one of: {choices}."]})
        return field, value.startswith("-")

    def paginate_queryset(
        self, queryset: QuerySet[Any, Row], request: Request, view: Any = None
    ) -> list[Row] | None:
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        self.field, self.descending = self._ordering(request, view)
        self.model = queryset.model
        position = self._decode(request)
        # A previous page is read in the other direction, then turned round.
        backwards = position is not None and position[2]
        descending = self.descending != backwards
        sign = "-" if descending else ""
        rows = queryset.order_by(f"{sign}{self.field}", f"{sign}id")
        if position is not None:
            value, pk = position[0], position[1]
            beyond = "lt" if descending else "gt"
            rows = rows.filter(
                Q(**{f"{self.field}__{beyond}": value})
                | Q(**{self.field: value, f"id__{beyond}": pk})
            )
        page = list(rows[: self.page_size + 1])
        more = len(page) > self.page_size
        page = page[: self.page_size]
        if backwards:
            page.reverse()
        self.page = page
        # Links: a next page when more rows lie ahead (or we came back from one),
        # a previous page when we did not start at the top.
        ahead = more if not backwards else True
        behind = position is not None and (not backwards or more)
        self._next = self._encode(page[-1], backwards=False) if page and ahead else None
        self._previous = self._encode(page[0], backwards=True) if page and behind else None
        return page

    def get_next_link(self) -> str | None:
        return self._link(self._next)

    def get_previous_link(self) -> str | None:
        return self._link(self._previous)

    def _link(self, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        return replace_query_param(self.base_url or "", self.cursor_query_param, cursor)

    def _encode(self, row: Any, *, backwards: bool) -> str:
        value = getattr(row, self.field)
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        raw = json.dumps([self.field, text, row.pk, backwards])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _decode(self, request: Request) -> tuple[Any, int, bool] | None:
        cursor = request.query_params.get(self.cursor_query_param)
        if not cursor:
            return None
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            field, text, pk, backwards = json.loads(base64.urlsafe_b64decode(padded))
            if field != self.field:
                raise ValueError(field)
            value = self.model._meta.get_field(self.field).to_python(text)
            return value, int(pk), bool(backwards)
        except (ValueError, TypeError, binascii.Error, DjangoValidationError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc

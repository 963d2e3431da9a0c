"""Segments API: CRUD, preview of an unsaved tree, members, membership history,
static members by hand or CSV, exclusions, and an on-demand refresh."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core.roles import ADMIN_MARKETER, ALL_ROLES
from leads.api.pagination import page_of_related
from leads.api.permissions import RoleAccess
from leads.api.serializers import LeadSerializer, lead_output_context, leads_for_output
from leads.models import Lead, MembershipSource, Segment, SegmentKind, SegmentMembership
from leads.selectors import leads_visible_to
from segments import services as segment_services
from segments.conditions import ConditionError, compile_tree

CONDITIONS_HELP = (
    'A tree of {"all": [...]} / {"any": [...]} groups of rules: field rules '
    '{"field", "op", "value"}, activity rules {"activity", "name", "where", "count", '
    '"within_days" | "between"} and segment rules {"segment", "op": "in" | "not_in"}.'
)
PREVIEW_SAMPLE = 20
MAX_LEADS_PER_CALL = 10_000


def _condition_errors(exc: ConditionError, prefix: str = "conditions") -> ValidationError:
    return ValidationError(
        {f"{prefix}.{path}" if path else prefix: messages for path, messages in exc.fields.items()}
    )


class SegmentSerializer(serializers.ModelSerializer[Segment]):
    conditions = serializers.JSONField(required=False, help_text=CONDITIONS_HELP)
    kind = serializers.ChoiceField(choices=SegmentKind.choices, default=SegmentKind.DYNAMIC)
    refreshing = serializers.BooleanField(
        read_only=True, help_text="A recompute was asked for and has not finished yet."
    )
    last_refreshed_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the last recompute finished (null: never)."
    )

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "conditions",
            "time_relative",
            "member_count",
            "refreshing",
            "refresh_requested_at",
            "last_refreshed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "time_relative",
            "member_count",
            "refresh_requested_at",
            "last_refreshed_at",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "kind" in attrs and attrs["kind"] != self.instance.kind:
            raise ValidationError({"kind": ["The kind of a segment cannot change."]})
        kind = attrs.get("kind", getattr(self.instance, "kind", SegmentKind.DYNAMIC))
        if "conditions" in attrs or self.instance is None:
            conditions = attrs.get("conditions")
            if kind == SegmentKind.DYNAMIC and not conditions:
                raise ValidationError({"conditions": ["A dynamic segment needs conditions."]})
            try:
                attrs["conditions"] = segment_services.segment_conditions_clean(
                    conditions=conditions or {}, kind=kind, segment=self.instance
                )
            except ConditionError as exc:
                raise _condition_errors(exc) from None
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Segment:
        request = self.context["request"]
        user = request.user if isinstance(request.user, User) else None
        return segment_services.segment_create(
            name=validated_data["name"],
            kind=validated_data.get("kind", SegmentKind.DYNAMIC),
            conditions=validated_data.get("conditions"),
            description=validated_data.get("description", ""),
            created_by=user,
        )

    def update(self, instance: Segment, validated_data: dict[str, Any]) -> Segment:
        return segment_services.segment_update(
            segment=instance,
            name=validated_data.get("name"),
            description=validated_data.get("description"),
            conditions=validated_data.get("conditions"),
        )


class PreviewSerializer(serializers.Serializer[dict[str, Any]]):
    conditions = serializers.JSONField(help_text=CONDITIONS_HELP)


class LeadsSelectionSerializer(serializers.Serializer[dict[str, Any]]):
    """Leads by id, by email, or both."""

    leads = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        default=list,
    )
    emails = serializers.ListField(child=serializers.EmailField(), required=False, default=list)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["leads"] and not attrs["emails"]:
            raise ValidationError({"leads": ["Give lead ids or emails."]})
        if len(attrs["leads"]) + len(attrs["emails"]) > MAX_LEADS_PER_CALL:
            raise ValidationError({"leads": [f"At most {MAX_LEADS_PER_CALL} leads per call."]})
        return attrs


class MembershipSerializer(serializers.ModelSerializer[SegmentMembership]):
    segment_name = serializers.CharField(source="segment.name", read_only=True)

    class Meta:
        model = SegmentMembership
        fields = ["id", "segment", "segment_name", "lead", "entered_at", "left_at", "source"]
        read_only_fields = fields


MoveResult = inline_serializer(
    "SegmentMoveResult",
    {"changed": serializers.IntegerField(), "not_found": serializers.ListField()},
)


class SegmentViewSet(viewsets.ModelViewSet[Segment]):
    """Segments. Admins and marketers edit; sales reps read."""

    serializer_class = SegmentSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ADMIN_MARKETER
    queryset = Segment.objects.all()

    def get_queryset(self) -> QuerySet[Segment]:
        return Segment.objects.order_by("-id")

    def perform_destroy(self, instance: Segment) -> None:
        try:
            segment_services.segment_delete(segment=instance)
        except ConditionError as exc:
            raise _condition_errors(exc, "segment") from None

    @extend_schema(
        request=PreviewSerializer,
        responses=inline_serializer(
            "SegmentPreview",
            {"count": serializers.IntegerField(), "sample": LeadSerializer(many=True)},
        ),
    )
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """How many leads an unsaved tree selects, and a sample of 20."""
        serializer = PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            # The rules of saving, so that a tree that previews can be saved.
            tree = segment_services.segment_conditions_clean(
                conditions=serializer.validated_data["conditions"], kind=SegmentKind.DYNAMIC
            )
        except ConditionError as exc:
            raise _condition_errors(exc) from None
        leads = leads_visible_to(request.user).filter(compile_tree(tree))
        sample = leads_for_output(leads).order_by("-id")[:PREVIEW_SAMPLE]
        return Response(
            {
                "count": leads.count(),
                "sample": LeadSerializer(
                    sample, many=True, context=lead_output_context(request)
                ).data,
            }
        )

    @extend_schema(responses=LeadSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request: Request, pk: str | None = None) -> Response:
        """Current members, newest first."""
        segment = self.get_object()
        leads = leads_for_output(
            leads_visible_to(request.user).filter(
                memberships__segment=segment, memberships__left_at__isnull=True
            )
        )
        page = page_of_related(self, leads)
        data = LeadSerializer(page, many=True, context=lead_output_context(request)).data
        return self.get_paginated_response(data)

    def _selection(self, request: Request) -> tuple[list[int], list[str]]:
        serializer = LeadsSelectionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = set(serializer.validated_data["leads"])
        emails = {e.lower() for e in serializer.validated_data["emails"]}
        found = dict(
            Lead.objects.filter(email__in=emails).values_list("email", "id") if emails else []
        )
        existing = set(Lead.objects.filter(pk__in=ids).values_list("id", flat=True))
        missing = [str(i) for i in sorted(ids - existing)] + sorted(emails - set(found))
        return sorted(existing | set(found.values())), missing

    def _move(self, request: Request, move: Callable[[Segment, list[int]], int]) -> Response:
        segment = self.get_object()
        ids, missing = self._selection(request)
        try:
            changed = move(segment, ids)
        except ConditionError as exc:
            raise _condition_errors(exc, "segment") from None
        return Response({"changed": changed, "not_found": missing})

    @extend_schema(request=LeadsSelectionSerializer, responses=MoveResult)
    @action(detail=True, methods=["post"], url_path="members/add")
    def add(self, request: Request, pk: str | None = None) -> Response:
        """Add leads to a static segment."""
        return self._move(
            request, lambda s, ids: segment_services.segment_add_leads(segment=s, lead_ids=ids)
        )

    @extend_schema(request=LeadsSelectionSerializer, responses=MoveResult)
    @action(detail=True, methods=["post"], url_path="members/remove")
    def remove(self, request: Request, pk: str | None = None) -> Response:
        """Remove leads from a static segment."""
        return self._move(
            request,
            lambda s, ids: segment_services.segment_remove_leads(segment=s, lead_ids=ids),
        )

    @extend_schema(request=LeadsSelectionSerializer, responses=MoveResult)
    @action(detail=True, methods=["post"])
    def exclude(self, request: Request, pk: str | None = None) -> Response:
        """Keep leads out of a dynamic segment until they are included again."""
        user = request.user if isinstance(request.user, User) else None
        return self._move(
            request,
            lambda s, ids: segment_services.segment_exclude_leads(
                segment=s, lead_ids=ids, created_by=user
            ),
        )

    @extend_schema(request=LeadsSelectionSerializer, responses=MoveResult)
    @action(detail=True, methods=["post"])
    def include(self, request: Request, pk: str | None = None) -> Response:
        """Lift exclusions; leads that match enter again."""
        return self._move(
            request,
            lambda s, ids: segment_services.segment_include_leads(segment=s, lead_ids=ids),
        )

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        responses=MoveResult,
    )
    @action(
        detail=True, methods=["post"], url_path="members/import", parser_classes=[MultiPartParser]
    )
    def import_members(self, request: Request, pk: str | None = None) -> Response:
        """Add the leads of a CSV file of emails (first column, or a column named
        email) to a static segment."""
        segment = self.get_object()
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["Upload a CSV file of emails."]})
        try:
            emails = _emails_from_csv(upload.read())
        except ValueError as exc:
            raise ValidationError({"file": [str(exc)]}) from None
        found = dict(Lead.objects.filter(email__in=emails).values_list("email", "id"))
        try:
            changed = segment_services.segment_add_leads(
                segment=segment, lead_ids=found.values(), source=MembershipSource.IMPORT
            )
        except ConditionError as exc:
            raise _condition_errors(exc, "segment") from None
        return Response({"changed": changed, "not_found": sorted(set(emails) - set(found))})

    @extend_schema(request=None, responses={202: SegmentSerializer})
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str | None = None) -> Response:
        """Recompute the segment now (in a worker); a static one has nothing to
        recompute. The answer shows ``refreshing``: poll the segment until it
        turns false."""
        segment = self.get_object()
        if segment.kind == SegmentKind.DYNAMIC:
            segment_services.segment_refresh_request(segment=segment)
        return Response(SegmentSerializer(segment).data, status=status.HTTP_202_ACCEPTED)


def _emails_from_csv(data: bytes) -> list[str]:
    if len(data) > 20 * 1024 * 1024:
        raise ValueError("The file is larger than 20 MB.")
    text = io.StringIO(data.decode("utf-8-sig", errors="replace"))
    try:
        rows = list(csv.reader(text))
    except csv.Error as exc:
        raise ValueError(f"The file is not readable as CSV: {exc}.") from None
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = header.index("email") if "email" in header else 0
    start = 1 if "@" not in (rows[0][column] if rows[0] else "") else 0
    emails = []
    for row in rows[start:]:
        if len(row) > column and "@" in row[column]:
            emails.append(row[column].strip().lower())
    if len(emails) > 100_000:
        raise ValueError("At most 100,000 emails per file.")
    return emails


class LeadSegmentsViewSet(viewsets.GenericViewSet[SegmentMembership]):
    """A lead's membership history (every stay, open or closed)."""

    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    serializer_class = MembershipSerializer
    queryset = SegmentMembership.objects.none()

    def list(self, request: Request, lead_pk: int) -> Response:
        lead = leads_visible_to(request.user).filter(pk=lead_pk).first()
        if lead is None:
            raise Http404
        stays = SegmentMembership.objects.filter(lead=lead).select_related("segment")
        page = self.paginate_queryset(stays)
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

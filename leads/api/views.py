from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import django_filters
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.roles import ADMIN_MARKETER, ALL_ROLES, Role
from core.vocabulary import EngagementGrade, FitGrade, Grade
from leads.api.errors import error_body
from leads.api.pagination import OrderedCursorPagination
from leads.api.permissions import HumanOnly, RoleAccess
from leads.api.serializers import (
    AcceptedSerializer,
    ApiKeyCreatedSerializer,
    ApiKeySerializer,
    EmailEventInSerializer,
    EventInSerializer,
    EventSerializer,
    FieldDefinitionSerializer,
    LeadSerializer,
    lead_output_context,
    leads_for_output,
)
from leads.category_scores import category_scores
from leads.models import ApiKey, Event, FieldDefinition, Lead, Stage
from leads.roles import ApiKeyPrincipal, is_ingest_key, user_role
from leads.selectors import LeadFilters, events_visible_to, leads_filter, leads_visible_to
from leads.services.api_keys import api_key_create, api_key_revoke
from leads.services.email_events import email_event_build
from leads.services.events import events_record
from leads.services.ingest import (
    FIELD_WRITING_TYPES,
    ingest_context,
    message_size_ok,
    valid_email,
)
from leads.services.privacy import lead_erase, lead_export_response
from leads.services.users import integration_settings

CATEGORY_PARAM = "score."
# The leads API's ``ordering``: fields that are never empty, so that a keyset can page them.
LEAD_ORDERING = ("id", "score", "created_at", "updated_at")
MAX_POINTS = 2**31 - 1


class LeadFilter(django_filters.FilterSet):
    """The leads list page's filters (one selector serves both), plus ``email``."""

    email = django_filters.CharFilter(help_text="Exact email (case-insensitive).")
    q = django_filters.CharFilter(help_text="Name, email or company.")
    segment = django_filters.NumberFilter(help_text="Current members of this segment id.")
    grade = django_filters.ChoiceFilter(choices=Grade.choices)
    fit_grade = django_filters.ChoiceFilter(
        choices=FitGrade.choices, help_text="Fit A (best) to D."
    )
    engagement_grade = django_filters.ChoiceFilter(
        choices=EngagementGrade.choices, help_text="Engagement 1 (most engaged) to 4."
    )
    stage = django_filters.ChoiceFilter(choices=Stage.choices)
    owner = django_filters.CharFilter(help_text="A user id, or 'none'.")
    tag = django_filters.CharFilter(help_text="A tag name.")
    score_min = django_filters.NumberFilter(help_text="Score at least.")
    score_max = django_filters.NumberFilter(help_text="Score at most.")

    class Meta:
        model = Lead
        fields: list[str] = []

    def _category_scores(self) -> tuple[tuple[str, int | None, int | None], ...]:
        """``score.<category>_min`` / ``_max``: points in a category, like
        ``score_min`` / ``score_max`` for the total (a lead with none has 0)."""
        bounds: dict[str, list[int | None]] = {}
        errors: dict[str, list[str]] = {}
        for name in self.data:
            if not name.startswith(CATEGORY_PARAM):
                continue
            key, _, end = name[len(CATEGORY_PARAM) :].rpartition("_")
            value = str(self.data.get(name, "")).strip()
            if end not in ("min", "max") or not key:
                errors[name] = ["Expected score.<category>_min or score.<category>_max."]
                continue
            if not value.lstrip("-").isdigit() or abs(int(value)) > MAX_POINTS:
                errors[name] = ["Expected a whole number."]
                continue
            bounds.setdefault(key, [None, None])[end == "max"] = int(value)
        if bounds:
            known = set(category_scores().keys())
            for key in sorted(set(bounds) - known):
                errors[f"{CATEGORY_PARAM}{key}"] = [f"No score category {key!r}."]
        if errors:
            raise ValidationError(errors)
        return tuple((key, low, high) for key, (low, high) in sorted(bounds.items()))

    def filter_queryset(self, queryset: QuerySet[Lead]) -> QuerySet[Lead]:
        data = self.form.cleaned_data
        owner: int | str | None = None
        if data.get("owner") == "none":
            owner = "none"
        elif data.get("owner"):
            owner = id_param(data["owner"], "owner", "Expected a user id or 'none'.")
        filters = LeadFilters(
            q=data.get("q") or "",
            segment=_whole(data.get("segment"), "segment"),
            grade=data.get("grade") or "",
            fit_grade=data.get("fit_grade") or "",
            engagement_grade=data.get("engagement_grade") or "",
            stage=data.get("stage") or "",
            owner=owner,
            tag=data.get("tag") or "",
            score_min=_whole(data.get("score_min"), "score_min"),
            score_max=_whole(data.get("score_max"), "score_max"),
            category_scores=self._category_scores(),
        )
        queryset = leads_filter(queryset, filters)
        if data.get("email"):
            queryset = queryset.filter(email=data["email"].strip().lower())
        return queryset


def _whole(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if value != int(value):
        raise ValidationError({name: ["Expected a whole number."]})
    return int(value)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "score.{category}_min",
                int,
                description="Points in a score category at least, e.g. score.fit_min=20 "
                "(a lead with no points there has 0).",
            ),
            OpenApiParameter("score.{category}_max", int, description="Points at most."),
            OpenApiParameter(
                "ordering",
                str,
                enum=[f"{sign}{name}" for name in LEAD_ORDERING for sign in ("", "-")],
                description="Sort by this field, '-' first for descending (ties by id); "
                "newest first by default.",
            ),
        ]
    )
)
class LeadViewSet(viewsets.ModelViewSet[Lead]):
    """Leads. Sales reps see and edit their own and unassigned leads only."""

    serializer_class = LeadSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ALL_ROLES
    # Deleting a lead erases it and all its data: an admin's decision.
    delete_roles = frozenset({Role.ADMIN})
    filterset_class = LeadFilter
    pagination_class = OrderedCursorPagination
    ordering_fields = LEAD_ORDERING

    def get_queryset(self) -> QuerySet[Lead]:
        return leads_for_output(leads_visible_to(self.request.user))

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), **lead_output_context(self.request)}

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not _is_admin_or_marketer(request):
            return Response(
                error_body("permission_denied", "Sales reps cannot create leads."),
                status=status.HTTP_403_FORBIDDEN,
            )
        return super().create(request, *args, **kwargs)

    def perform_destroy(self, instance: Lead) -> None:
        user = self.request.user
        lead_erase(lead=instance, user=user if isinstance(user, User) else None, via="api")

    @extend_schema(
        summary="Everything held about a lead (JSON)",
        responses={(200, "application/json"): dict},
    )
    @action(detail=True, methods=["get"], url_path="export")
    def export(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        if user_role(request.user) != Role.ADMIN:
            raise PermissionDenied("Only admins can export a lead's data.")
        return lead_export_response(self.get_object())


def _is_admin_or_marketer(request: Request) -> bool:

    return user_role(request.user) in ADMIN_MARKETER


class FieldDefinitionViewSet(viewsets.ModelViewSet[FieldDefinition]):
    """Custom lead fields."""

    queryset = FieldDefinition.objects.all()
    serializer_class = FieldDefinitionSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ADMIN_MARKETER


MAX_ID = 2**63 - 1


def utc_or_refuse(value: dt.datetime, name: str) -> dt.datetime:
    """In UTC: PostgreSQL refuses offsets past 15:59 that ISO 8601 allows."""
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationError({name: ["The time is out of range."]}) from None


def id_param(value: str, name: str, message: str = "Expected an id.") -> int:
    """A query-string id, refused with a 400 when it cannot be a database id."""
    if not value.isdigit() or int(value) > MAX_ID:
        raise ValidationError({name: [message]})
    return int(value)


class EventFilter(django_filters.FilterSet):
    lead = django_filters.CharFilter(method="filter_lead", help_text="A lead id.")
    type = django_filters.CharFilter()
    name = django_filters.CharFilter()
    occurred_after = django_filters.IsoDateTimeFilter(method="filter_occurred")
    occurred_before = django_filters.IsoDateTimeFilter(method="filter_occurred")

    class Meta:
        model = Event
        fields = ["lead", "type", "name", "occurred_after", "occurred_before"]

    def filter_lead(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        return queryset.filter(lead_id=id_param(value, "lead"))

    def filter_occurred(
        self, queryset: QuerySet[Event], name: str, value: dt.datetime
    ) -> QuerySet[Event]:
        lookup = "occurred_at__gte" if name == "occurred_after" else "occurred_at__lt"
        return queryset.filter(**{lookup: utc_or_refuse(value, name)})


def _body_too_large(request: Request) -> Response | None:
    length = request.headers.get("Content-Length", "")
    declared = int(length) if length.isdigit() else 0
    # Checked before the body is read, so a huge body never reaches memory.
    if declared > settings.INGEST_MAX_BATCH_BYTES or (
        len(request._request.body) > settings.INGEST_MAX_BATCH_BYTES
    ):
        return Response(
            error_body(
                "too_large", f"A request is limited to {settings.INGEST_MAX_BATCH_BYTES} bytes."
            ),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return None


def _items(request: Request) -> tuple[list[Any], bool]:
    """The events of a request: one object, or ``{"events": [...]}``."""
    data = request.data
    if isinstance(data, dict) and "events" in data:
        if not isinstance(data["events"], list):
            raise ValidationError({"events": ["Expected a list."]})
        return data["events"], True
    return [data], False


def _batch_too_long(items: list[Any]) -> Response | None:
    for index, item in enumerate(items):
        if not message_size_ok(item):
            return Response(
                error_body(
                    "too_large",
                    f"Event {index} is larger than {settings.INGEST_MAX_EVENT_BYTES} bytes.",
                ),
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
    if len(items) > settings.INGEST_MAX_BATCH_EVENTS:
        return Response(
            error_body(
                "too_large", f"A batch holds at most {settings.INGEST_MAX_BATCH_EVENTS} events."
            ),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return None


def _validate_all(
    serializer_class: type[serializers.Serializer[dict[str, Any]]],
    items: list[Any],
    batch: bool,
    context: dict[str, Any],
) -> list[dict[str, Any]]:
    """Validate every item; any error rejects the whole request (nothing is written)."""
    errors: dict[str, Any] = {}
    valid: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        serializer = serializer_class(data=item, context=context)
        if serializer.is_valid():
            valid.append(serializer.validated_data)
        elif batch:
            errors[f"events[{index}]"] = serializer.errors
        else:
            raise ValidationError(serializer.errors)
    if errors:
        raise ValidationError(errors)
    return valid


class EventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Event]
):
    """Activity events. ``POST`` takes one event or ``{"events": [...]}`` (at most 500
    events and 500 KB). A batch is all or nothing: if any event is invalid, none is
    stored and the errors are reported as ``events[i].field``."""

    serializer_class = EventSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ADMIN_MARKETER
    ingest_methods = ("POST",)
    filterset_class = EventFilter

    def get_queryset(self) -> QuerySet[Event]:
        return events_visible_to(self.request.user)

    @extend_schema(request=EventInSerializer, responses={202: AcceptedSerializer})
    def create(self, request: Request) -> Response:
        if (too_large := _body_too_large(request)) is not None:
            return too_large
        items, batch = _items(request)
        if (too_long := _batch_too_long(items)) is not None:
            return too_long
        visible = (
            Lead.objects.all()
            if isinstance(request.user, ApiKeyPrincipal)
            else leads_visible_to(request.user)
        )
        ingest = is_ingest_key(request.user)
        context = {"visible_leads": visible, "ingest_only": ingest}
        valid = _validate_all(EventInSerializer, items, batch, context)
        now = timezone.now()
        secret = ""
        if ingest and any(data.get("user_hash") for data in valid):
            secret = integration_settings().identity_secret
        events = [
            Event(
                lead_id=data.get("lead"),
                type=data["type"],
                name=data.get("name", ""),
                properties=data.get("properties", {}),
                context=ingest_context(
                    {},
                    ingest=ingest and data["type"] in FIELD_WRITING_TYPES,
                    secret=secret,
                    user_id=data.get("user_id", ""),
                    email=_event_email(data),
                    user_hash=data.get("user_hash"),
                ),
                email=_event_email(data),
                user_id=data.get("user_id", ""),
                anonymous_id=data.get("anonymous_id", ""),
                occurred_at=data.get("occurred_at") or now,
                received_at=now,
                source="api",
                idempotency_key=data.get("idempotency_key") or uuid.uuid4().hex,
            )
            for data in valid
        ]
        ids = events_record(events=events)
        return Response({"accepted": len(events), "ids": ids}, status=status.HTTP_202_ACCEPTED)


def _event_email(data: dict[str, Any]) -> str:
    if data.get("email"):
        return str(data["email"]).strip().lower()
    if data["type"] == "identify":
        return valid_email(data.get("properties", {}).get("email")) or ""
    return ""


# Any: the view set reads no model; its serializer is a plain one for the input.
class EmailEventViewSet(viewsets.GenericViewSet[Any]):
    """Generic email activity (``email.opened`` …) for providers without a webhook
    parser, and for replies. One object or ``{"events": [...]}``, all or nothing.
    Needs a ``full`` key: an ``ingest`` key may be public, and email activity can
    unsubscribe a lead."""

    permission_classes = [RoleAccess]
    write_roles = ADMIN_MARKETER
    serializer_class = EmailEventInSerializer

    @extend_schema(request=EmailEventInSerializer, responses={202: AcceptedSerializer})
    def create(self, request: Request) -> Response:
        if (too_large := _body_too_large(request)) is not None:
            return too_large
        items, batch = _items(request)
        if (too_long := _batch_too_long(items)) is not None:
            return too_long
        valid = _validate_all(EmailEventInSerializer, items, batch, {})
        events = [
            email_event_build(
                type_=data["type"],
                email=data["email"],
                provider=data.get("provider") or "generic",
                event_id=data.get("event_id"),
                occurred_at=data.get("occurred_at"),
                message_id=data.get("message_id", ""),
                campaign=data.get("campaign", ""),
                url=data.get("url", ""),
                extra={"bounce_type": data["bounce_type"]} if data["type"] == "bounced" else None,
            )
            for data in valid
        ]
        ids = events_record(events=events)
        return Response({"accepted": len(events), "ids": ids}, status=status.HTTP_202_ACCEPTED)


class ApiKeyViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[ApiKey]
):
    """API keys (admins only). The key itself is returned once, on creation."""

    serializer_class = ApiKeySerializer
    permission_classes = [RoleAccess, HumanOnly]
    read_roles = frozenset({Role.ADMIN})
    write_roles = frozenset({Role.ADMIN})
    queryset = ApiKey.objects.all()

    @extend_schema(responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request) -> Response:
        serializer = ApiKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request.user if isinstance(request.user, User) else None
        row, key = api_key_create(
            name=serializer.validated_data["name"],
            scope=serializer.validated_data["scope"],
            created_by=user,
        )
        data = ApiKeySerializer(row).data
        data["key"] = key
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        api_key_revoke(key=key)
        key.refresh_from_db()
        return Response(ApiKeySerializer(key).data)

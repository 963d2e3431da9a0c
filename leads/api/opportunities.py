"""Opportunities API: a lead's deals (``/leads/{id}/opportunities/``: list, open)
and each deal (``/opportunities/``: list, read, ``win``, ``lose``). Everyone who
sees a lead sees its deals; sales reps and admins (and ``full`` keys) act on them,
through ``leads.services.outcomes``."""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.roles import ALL_ROLES
from leads.api.errors import error_body
from leads.api.permissions import RoleAccess
from leads.api.serializers import UtcDateTimeField
from leads.api.views import id_param
from leads.models import Lead, Opportunity, OpportunityStatus
from leads.roles import user_role
from leads.selectors import leads_visible_to
from leads.services.outcomes import (
    DEFAULT_CURRENCY,
    MAX_VALUE,
    opportunity_lose,
    opportunity_open,
    opportunity_win,
)
from leads.services.policy import opportunity_refusal

ALREADY_CLOSED = OpenApiResponse(description="The opportunity is already won or lost.")


class OpportunitySerializer(serializers.ModelSerializer[Opportunity]):
    status = serializers.ChoiceField(choices=OpportunityStatus.choices, read_only=True)

    class Meta:
        model = Opportunity
        fields = [
            "id",
            "lead",
            "name",
            "value",
            "currency",
            "status",
            "opened_at",
            "closed_at",
            "lost_reason",
            "created_by",
        ]
        read_only_fields = fields


class OpportunityOpenSerializer(serializers.Serializer[dict[str, Any]]):
    value = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, max_value=MAX_VALUE
    )
    currency = serializers.CharField(
        max_length=3, default=DEFAULT_CURRENCY, help_text="ISO 4217 code, e.g. EUR."
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    opened_at = UtcDateTimeField(required=False, help_text="When it was opened; now if not given.")


class OpportunityWinSerializer(serializers.Serializer[dict[str, Any]]):
    closed_at = UtcDateTimeField(required=False, help_text="When it was won; now if not given.")


class OpportunityLoseSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(max_length=255)
    closed_at = UtcDateTimeField(required=False, help_text="When it was lost; now if not given.")


def _person(request: Request) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _may_act(request: Request) -> None:
    refused = opportunity_refusal(user_role(request.user))
    if refused is not None:
        raise PermissionDenied(refused)


def _refused(exc: DjangoValidationError) -> Response:
    """A service's refusal: a deal already closed is a conflict, anything else
    a bad value of the field it names."""
    if getattr(exc, "code", None) == "closed":
        return Response(
            error_body("closed", " ".join(exc.messages)), status=status.HTTP_409_CONFLICT
        )
    raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


def _visible_opportunities(user: Any) -> QuerySet[Opportunity]:
    return Opportunity.objects.filter(lead__in=leads_visible_to(user)).order_by("-opened_at", "-pk")


class LeadOpportunityViewSet(viewsets.GenericViewSet[Opportunity]):
    """A lead's opportunities, newest first; ``POST`` opens one and moves the
    lead to the opportunity stage (unless it is a customer already)."""

    serializer_class = OpportunitySerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ALL_ROLES
    pagination_class = None

    def _lead(self) -> Lead:
        return get_object_or_404(leads_visible_to(self.request.user), pk=self.kwargs["lead_pk"])

    def get_queryset(self) -> QuerySet[Opportunity]:
        if getattr(self, "swagger_fake_view", False):  # the schema's generation
            return Opportunity.objects.none()
        return _visible_opportunities(self.request.user).filter(lead=self._lead())

    def list(self, request: Request, lead_pk: int) -> Response:
        return Response(OpportunitySerializer(self.get_queryset(), many=True).data)

    @extend_schema(request=OpportunityOpenSerializer, responses={201: OpportunitySerializer})
    def create(self, request: Request, lead_pk: int) -> Response:
        _may_act(request)
        lead = self._lead()
        serializer = OpportunityOpenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            opportunity = opportunity_open(
                lead=lead,
                value=data["value"],
                currency=data["currency"],
                name=data["name"],
                user=_person(request),
                opened_at=data.get("opened_at"),
            )
        except DjangoValidationError as exc:
            return _refused(exc)
        return Response(OpportunitySerializer(opportunity).data, status=status.HTTP_201_CREATED)


class OpportunityFilter(django_filters.FilterSet):
    lead = django_filters.CharFilter(method="filter_lead", help_text="A lead id.")
    status = django_filters.ChoiceFilter(choices=OpportunityStatus.choices)

    class Meta:
        model = Opportunity
        fields = ["lead", "status"]

    def filter_lead(
        self, queryset: QuerySet[Opportunity], name: str, value: str
    ) -> QuerySet[Opportunity]:
        return queryset.filter(lead_id=id_param(value, "lead"))


class OpportunityViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Opportunity]
):
    """Opportunities of the leads you see, newest first; ``win`` makes the lead
    a customer, ``lose`` (with a reason) makes it lost when it has no other
    open deal."""

    serializer_class = OpportunitySerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ALL_ROLES
    filterset_class = OpportunityFilter

    def get_queryset(self) -> QuerySet[Opportunity]:
        if getattr(self, "swagger_fake_view", False):  # the schema's generation
            return Opportunity.objects.none()
        return _visible_opportunities(self.request.user)

    @extend_schema(
        request=OpportunityWinSerializer,
        responses={200: OpportunitySerializer, 409: ALREADY_CLOSED},
    )
    @action(detail=True, methods=["post"])
    def win(self, request: Request, pk: str | None = None) -> Response:
        _may_act(request)
        opportunity = self.get_object()
        serializer = OpportunityWinSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            opportunity_win(
                opportunity=opportunity,
                user=_person(request),
                closed_at=serializer.validated_data.get("closed_at"),
            )
        except DjangoValidationError as exc:
            return _refused(exc)
        return Response(OpportunitySerializer(opportunity).data)

    @extend_schema(
        request=OpportunityLoseSerializer,
        responses={200: OpportunitySerializer, 409: ALREADY_CLOSED},
    )
    @action(detail=True, methods=["post"])
    def lose(self, request: Request, pk: str | None = None) -> Response:
        _may_act(request)
        opportunity = self.get_object()
        serializer = OpportunityLoseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            opportunity_lose(
                opportunity=opportunity,
                reason=serializer.validated_data["reason"],
                user=_person(request),
                closed_at=serializer.validated_data.get("closed_at"),
            )
        except DjangoValidationError as exc:
            return _refused(exc)
        return Response(OpportunitySerializer(opportunity).data)

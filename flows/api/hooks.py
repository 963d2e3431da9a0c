"""Outbound event subscriptions (REST hooks) for admins and ``full`` keys:
``POST /api/v1/hooks/`` with ``target_url`` and ``event`` (or ``events``)
subscribes and answers with the id and the signing secret (shown once);
``DELETE /api/v1/hooks/{id}/`` unsubscribes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.roles import Role
from flows.hooks import (
    HOOK_EVENTS,
    hook_deliveries,
    hook_secret_rotate,
    hook_subscribe,
    hook_unsubscribe,
    hook_update,
)
from flows.models import Delivery, HookSubscription
from flows.outbound import outbound_url_problem
from leads.api.pagination import page_of_related
from leads.api.permissions import RoleAccess

ADMINS = frozenset({Role.ADMIN})
EVENT_CHOICES = sorted(HOOK_EVENTS)


class HookEventField(serializers.ChoiceField):
    """A hook event type."""

    def __init__(self, **kwargs: Any):
        super().__init__(choices=EVENT_CHOICES, **kwargs)


# The schema names the choice set once, under ``events``.
@extend_schema_field({"type": "string"})
class SingleHookEventField(HookEventField):
    pass


class HookSerializer(serializers.ModelSerializer[HookSubscription]):
    target_url = serializers.URLField(max_length=2000)
    events = serializers.ListField(
        child=HookEventField(),
        required=False,
        allow_empty=False,
        help_text="Hook event types (see /api/v1/hooks/event-types/).",
    )
    event = SingleHookEventField(
        required=False,
        write_only=True,
        help_text="One event type: the REST-hooks subscribe call (instead of events).",
    )

    class Meta:
        model = HookSubscription
        fields = ["id", "target_url", "events", "event", "description", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]

    def validate_target_url(self, value: str) -> str:
        # The same rule as every outbound target: no local or private addresses.
        problem = outbound_url_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "event" in attrs and "events" in attrs:
            raise serializers.ValidationError({"event": ["Give event or events, not both."]})
        if "event" in attrs:
            attrs["events"] = [attrs.pop("event")]
        if self.instance is None and not attrs.get("events"):
            raise serializers.ValidationError({"events": ["Subscribe to at least one event."]})
        return attrs


class HookCreatedSerializer(HookSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="Signs every delivery. Shown once; store it now."
    )

    class Meta(HookSerializer.Meta):
        fields = [*HookSerializer.Meta.fields, "secret"]


class HookDeliverySerializer(serializers.ModelSerializer[Delivery]):
    event = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id",
            "key",
            "event",
            "target",
            "status",
            "attempts",
            "response_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields

    def get_event(self, delivery: Delivery) -> str:
        return str(delivery.payload.get("body", {}).get("event", ""))


class HookViewSet(viewsets.ModelViewSet[HookSubscription]):
    """Outbound event subscriptions and their delivery logs (admins, full keys)."""

    serializer_class = HookSerializer
    permission_classes = [RoleAccess]
    read_roles = ADMINS
    write_roles = ADMINS

    def get_queryset(self) -> QuerySet[HookSubscription]:
        return HookSubscription.objects.all()

    @extend_schema(responses={201: HookCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = HookSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hook = hook_subscribe(
            target_url=serializer.validated_data["target_url"],
            events=serializer.validated_data["events"],
            description=serializer.validated_data.get("description", ""),
            created_by=request.user if isinstance(request.user, User) else None,
        )
        return Response(HookCreatedSerializer(hook).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: Any) -> None:
        data = serializer.validated_data
        hook_update(
            hook=serializer.instance,
            target_url=data.get("target_url"),
            events=data.get("events"),
            description=data.get("description"),
        )

    def perform_destroy(self, instance: HookSubscription) -> None:
        hook_unsubscribe(hook=instance)

    @extend_schema(request=None, responses={200: HookCreatedSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """A new signing secret, used from the next attempt on; shown once."""
        hook = hook_secret_rotate(hook=self.get_object())
        return Response(HookCreatedSerializer(hook).data)

    @extend_schema(responses={200: HookDeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """The subscription's deliveries, newest first."""
        page = page_of_related(self, hook_deliveries(hook=self.get_object()))
        return self.get_paginated_response(HookDeliverySerializer(page, many=True).data)

    @extend_schema(
        responses={
            200: inline_serializer(
                "HookEventType",
                {"key": serializers.CharField(), "description": serializers.CharField()},
                many=True,
            )
        }
    )
    @action(detail=False, methods=["get"], url_path="event-types", pagination_class=None)
    def event_types(self, request: Request) -> Response:
        return Response(
            [{"key": key, "description": str(HOOK_EVENTS[key])} for key in EVENT_CHOICES]
        )

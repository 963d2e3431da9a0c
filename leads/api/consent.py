"""A lead's marketing consent (``/leads/{id}/consent/``): its state and the
evidence of every change (GET), and a change with its evidence (POST, admins,
marketers and ``full`` keys), through the consent rules of
``leads.services.consent``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.roles import ADMIN_MARKETER, ALL_ROLES
from leads.api.errors import error_body
from leads.api.permissions import RoleAccess
from leads.api.serializers import UtcDateTimeField
from leads.models import ConsentRecord, ConsentSource, ConsentState, Lead
from leads.roles import ApiKeyPrincipal
from leads.selectors import leads_visible_to
from leads.services.consent import (
    DETAIL_LIMIT,
    USER_AGENT_LIMIT,
    WORDING_LIMIT,
    ConsentRefused,
    consent_set,
    consent_trail,
)

REFUSED = OpenApiResponse(
    description="The consent rules do not allow it (e.g. lifting a withdrawal the "
    "person made): the error's message says why; nothing changed."
)


class ConsentRecordSerializer(serializers.ModelSerializer[ConsentRecord]):
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="The user who set it on the profile or through the API; null otherwise.",
    )

    class Meta:
        model = ConsentRecord
        fields = [
            "id",
            "state",
            "source",
            "source_detail",
            "occurred_at",
            "ip_address",
            "user_agent",
            "wording",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class ConsentSerializer(serializers.Serializer[Lead]):
    state = serializers.ChoiceField(choices=ConsentState.choices, source="consent_state")
    changed_at = serializers.DateTimeField(source="consent_changed_at", allow_null=True)
    trail = serializers.SerializerMethodField(help_text="Every change, oldest first.")

    @extend_schema_field(ConsentRecordSerializer(many=True))
    def get_trail(self, lead: Lead) -> list[dict[str, Any]]:
        return list(ConsentRecordSerializer(consent_trail(lead=lead), many=True).data)


# What the API may set ("unknown" is a user's correction on the profile).
SETTABLE_STATES = [
    (value, label) for value, label in ConsentState.choices if value != ConsentState.UNKNOWN
]


class ConsentInSerializer(serializers.Serializer[dict[str, Any]]):
    state = serializers.ChoiceField(
        choices=SETTABLE_STATES,
        help_text="pending sends the double opt-in email (when it is required); "
        "confirmed: you hold the proof (give the wording); withdrawn: the person said no.",
    )
    wording = serializers.CharField(
        max_length=WORDING_LIMIT,
        required=False,
        allow_blank=True,
        default="",
        help_text="The sentence the person agreed to, as it was shown to them.",
    )
    ip_address = serializers.IPAddressField(required=False, allow_null=True, default=None)
    user_agent = serializers.CharField(
        max_length=USER_AGENT_LIMIT, required=False, allow_blank=True, default=""
    )
    occurred_at = UtcDateTimeField(required=False, help_text="When; now if not given.")
    source_detail = serializers.CharField(
        max_length=DETAIL_LIMIT,
        required=False,
        allow_blank=True,
        default="",
        help_text="Where, in words (your form's or system's name); the API key's name if empty.",
    )


class LeadConsentViewSet(viewsets.GenericViewSet[Lead]):
    """A lead's marketing consent and its evidence."""

    serializer_class = ConsentSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ADMIN_MARKETER
    pagination_class = None

    def _lead(self) -> Lead:
        return get_object_or_404(leads_visible_to(self.request.user), pk=self.kwargs["lead_pk"])

    def retrieve(self, request: Request, lead_pk: int) -> Response:
        return Response(ConsentSerializer(self._lead()).data)

    @extend_schema(request=ConsentInSerializer, responses={200: ConsentSerializer, 409: REFUSED})
    def create(self, request: Request, lead_pk: int) -> Response:
        lead = self._lead()
        serializer = ConsentInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = request.user
        detail = data["source_detail"]
        if not detail and isinstance(user, ApiKeyPrincipal):
            detail = user.api_key.name
        try:
            consent_set(
                lead=lead,
                state=data["state"],
                source=ConsentSource.API,
                source_detail=detail,
                occurred_at=data.get("occurred_at"),
                ip_address=data["ip_address"],
                user_agent=data["user_agent"],
                wording=data["wording"],
                user=user if isinstance(user, User) else None,
            )
        except ConsentRefused as refused:
            return Response(
                error_body("consent_refused", refused.message), status=status.HTTP_409_CONFLICT
            )
        lead.refresh_from_db(fields=["consent_state", "consent_changed_at"])
        return Response(ConsentSerializer(lead).data)

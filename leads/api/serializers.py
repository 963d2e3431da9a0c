from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.vocabulary import INBOUND_TYPES
from leads.category_scores import category_scores
from leads.locales import language_codes, language_of, time_zone_of
from leads.models import ApiKey, Event, FieldDefinition, FieldType, Lead, LeadSource, Stage
from leads.roles import user_role
from leads.services.fields import (
    RESERVED_KEYS,
    FieldValueError,
    choice_options_clean,
    custom_definitions,
    custom_value_clean,
)
from leads.services.ingest import contains_nul, valid_email
from leads.services.leads import lead_create, lead_update
from leads.services.policy import lead_change_refusals, lead_values

User = get_user_model()


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class TagListField(serializers.Field[Any, Any, list[str], Lead]):
    """A lead's tags as a list of names. The value read is the lead's tag manager
    and the value written a list of names, so its type is Any."""

    def to_representation(self, value: Any) -> list[str]:
        return sorted(tag.name for tag in value.all())

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
            raise serializers.ValidationError("Expected a list of tag names.")
        names = [t.strip() for t in data if t.strip()]
        if any(len(n) > 100 for n in names):
            raise serializers.ValidationError("A tag name is at most 100 characters.")
        return names


def leads_for_output(leads: QuerySet[Lead]) -> QuerySet[Lead]:
    """``leads`` with what ``LeadSerializer`` reads besides the row: two queries
    for any number of leads."""
    return category_scores().with_points(leads.prefetch_related("tags"))


def lead_output_context(request: Any) -> dict[str, Any]:
    """The context ``LeadSerializer`` wants: the request, and the score
    categories in their order (read once for a whole list)."""
    return {"request": request, "categories": category_scores().keys()}


class LeadSerializer(serializers.ModelSerializer[Lead]):
    email = serializers.EmailField(max_length=254, required=False, allow_null=True)
    tags = TagListField(required=False)
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True
    )
    custom_fields = serializers.DictField(required=False)
    stage = serializers.ChoiceField(choices=Stage.choices, required=False)
    category_scores = serializers.SerializerMethodField(
        help_text="Points per score category (every category, 0 where the lead has none)."
    )
    rating = serializers.CharField(
        read_only=True, help_text='Fit and engagement as one badge, "A1" (best) to "D4".'
    )

    class Meta:
        model = Lead
        fields = [
            "id",
            "email",
            "external_id",
            "first_name",
            "last_name",
            "phone",
            "job_title",
            "company_name",
            "company_size",
            "industry",
            "country",
            "city",
            "language",
            "time_zone",
            "stage",
            "mql_at",
            "sql_at",
            "opportunity_at",
            "customer_at",
            "lost_at",
            "disqualified_at",
            "qualified_score",
            "source",
            "source_detail",
            "owner",
            "tags",
            "unsubscribed",
            "consent_state",
            "consent_changed_at",
            "email_bounced_at",
            "score",
            "grade",
            "fit_grade",
            "engagement_grade",
            "rating",
            "category_scores",
            "custom_fields",
            "created_at",
            "updated_at",
            "last_activity_at",
        ]
        extra_kwargs = {
            "language": {
                "help_text": "The language emails and pages for the lead use: one of the "
                'site\'s languages ("de", "en"; "de-DE" is taken as "de"); blank for the '
                "site's default."
            },
            "time_zone": {
                "help_text": "The lead's IANA time zone (\"Europe/Berlin\"); blank for the site's."
            },
            "source": {
                "help_text": "Where the lead came from: set from its first page view, a "
                "form, an import, or api for a lead created here, unless given."
            },
        }
        # Scores move through the ledger only (``/leads/{id}/score/adjust/``);
        # lifecycle dates are written when the stage changes, never directly.
        read_only_fields = [
            "id",
            "score",
            "grade",
            "fit_grade",
            "engagement_grade",
            "mql_at",
            "sql_at",
            "opportunity_at",
            "customer_at",
            "lost_at",
            "disqualified_at",
            "qualified_score",
            "created_at",
            "updated_at",
            "last_activity_at",
            # Consent moves by its rules, with evidence: ``/leads/{id}/consent/``.
            "consent_state",
            "consent_changed_at",
            "email_bounced_at",
        ]

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "integer"}})
    def get_category_scores(self, lead: Lead) -> dict[str, int]:
        # The views read the points with the leads (``leads_for_output``).
        points = category_scores().points(lead)
        keys = self.context.get("categories") or sorted(points)
        return {key: points.get(key, 0) for key in keys}

    def validate_email(self, value: str | None) -> str | None:
        if not value:
            return None
        value = value.strip().lower()
        taken = Lead.objects.filter(email=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("A lead with this email already exists.")
        return value

    def validate_language(self, value: str) -> str:
        if not value:
            return ""
        code = language_of(value)
        if code is None:
            raise serializers.ValidationError(
                gettext("%(value)s is not one of the languages here: %(codes)s.")
                % {"value": value, "codes": ", ".join(language_codes())}
            )
        return code

    def validate_time_zone(self, value: str) -> str:
        if not value:
            return ""
        zone = time_zone_of(value)
        if zone is None:
            raise serializers.ValidationError(
                gettext('%(value)s is not a time zone; use an IANA name like "Europe/Berlin".')
                % {"value": value}
            )
        return zone

    def validate_external_id(self, value: str | None) -> str | None:
        if not value:
            return None
        taken = Lead.objects.filter(external_id=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("A lead with this external id already exists.")
        return value

    def validate_custom_fields(self, value: dict[str, Any]) -> dict[str, Any]:
        definitions = custom_definitions()
        errors: dict[str, list[str]] = {}
        cleaned: dict[str, Any] = {}
        for key, raw in value.items():
            definition = definitions.get(key)
            if definition is None:
                errors[key] = [f"Unknown custom field {key!r}."]
                continue
            try:
                cleaned[key] = custom_value_clean(definition, raw)
            except FieldValueError as exc:
                errors[key] = [str(exc)]
        if errors:
            raise serializers.ValidationError(errors)
        return cleaned

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        request = self.context.get("request")
        if request is not None:
            refused = lead_change_refusals(
                role=user_role(request.user),
                user_id=request.user.pk,
                current=lead_values(self.instance),
                changes=attrs,
            )
            if refused:
                raise serializers.ValidationError({k: [v] for k, v in refused.items()})
        if self.instance is None and not attrs.get("email") and not attrs.get("external_id"):
            raise serializers.ValidationError(
                {"email": ["A lead needs an email or an external id."]}
            )
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Lead:
        tags = validated_data.pop("tags", [])
        custom = {k: v for k, v in validated_data.pop("custom_fields", {}).items() if v is not None}
        owner = validated_data.pop("owner", None)
        # Created through the API: that is where it came from, unless told.
        if not validated_data.get("source"):
            validated_data["source"] = LeadSource.API
        return lead_create(fields=validated_data, custom=custom, tags=tags, owner=owner)

    def update(self, instance: Lead, validated_data: dict[str, Any]) -> Lead:
        tags = validated_data.pop("tags", None)
        custom = validated_data.pop("custom_fields", None)
        with transaction.atomic():
            lead = Lead.objects.select_for_update().get(pk=instance.pk)
            current = set(lead.tags.values_list("name", flat=True))
            lead_update(
                lead=lead,
                changes=validated_data,
                custom=custom,
                tags_add=tags or [],
                tags_remove=current - set(tags) if tags is not None else [],
            )
        return leads_for_output(Lead.objects.all()).get(pk=lead.pk)


class FieldDefinitionSerializer(serializers.ModelSerializer[FieldDefinition]):
    type = serializers.ChoiceField(choices=FieldType.choices)

    class Meta:
        model = FieldDefinition
        fields = ["id", "key", "label", "type", "options", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_key(self, value: str) -> str:
        if self.instance is not None and value != self.instance.key:
            raise serializers.ValidationError("The key of a field cannot change.")
        if value in RESERVED_KEYS:
            raise serializers.ValidationError(f"{value!r} is a standard lead field.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        field_type = attrs.get("type", getattr(self.instance, "type", None))
        if self.instance is not None and field_type != self.instance.type:
            raise serializers.ValidationError({"type": ["The type of a field cannot change."]})
        options = attrs.get("options", getattr(self.instance, "options", []))
        try:
            attrs["options"] = choice_options_clean(str(field_type), options)
        except FieldValueError as exc:
            raise serializers.ValidationError({"options": [str(exc)]}) from None
        return attrs


class UtcDateTimeField(serializers.DateTimeField):
    """Kept in UTC: PostgreSQL refuses offsets past 15:59 that ISO 8601 allows."""

    def to_internal_value(self, value: dt.datetime | str) -> dt.datetime:
        parsed = super().to_internal_value(value)
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            raise serializers.ValidationError("The time is out of range.") from None


REST_EVENT_TYPES = sorted(INBOUND_TYPES - {"group", "alias"})


class EventInSerializer(serializers.Serializer[dict[str, Any]]):
    """An event sent through the REST API. Name the lead by ``lead`` (id), ``email``,
    ``user_id`` or ``anonymous_id``; for ``identify`` the properties are traits."""

    type = serializers.ChoiceField(choices=REST_EVENT_TYPES)
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    properties = serializers.DictField(required=False, default=dict)
    occurred_at = UtcDateTimeField(required=False)
    lead = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    email = serializers.EmailField(required=False, max_length=254)
    user_id = serializers.CharField(required=False, max_length=255)
    anonymous_id = serializers.CharField(required=False, max_length=255)
    idempotency_key = serializers.CharField(required=False, max_length=200)
    user_hash = serializers.CharField(
        required=False,
        max_length=128,
        help_text=(
            "Identity verification for an ingest key: the hex HMAC-SHA256 of user_id "
            "(or, without one, of the email) with the identity secret from Settings → "
            "Integrations. Without it, an ingest key's identify only fills empty fields."
        ),
    )

    def validate_properties(self, value: dict[str, Any]) -> dict[str, Any]:
        if contains_nul(value):
            raise serializers.ValidationError("Text may not contain NUL characters.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.context.get("ingest_only"):
            # Ingest keys can be public (a website snippet): they describe what a
            # person did, never what a mailbox did, and never address a lead by id.
            if attrs["type"].startswith("email."):
                raise serializers.ValidationError(
                    {"type": ["An ingest key cannot send email events; use a full key."]}
                )
            if attrs.get("lead"):
                raise serializers.ValidationError(
                    {"lead": ["An ingest key names leads by email, user_id or anonymous_id."]}
                )
        traits_email = attrs.get("properties", {}).get("email")
        identified = attrs["type"] == "identify" and valid_email(traits_email) is not None
        if not identified and not any(
            attrs.get(k) for k in ("lead", "email", "user_id", "anonymous_id")
        ):
            raise serializers.ValidationError(
                {"lead": ["Give one of lead, email, user_id or anonymous_id."]}
            )
        visible = self.context.get("visible_leads")
        if (
            attrs.get("lead")
            and visible is not None
            and not visible.filter(pk=attrs["lead"]).exists()
        ):
            raise serializers.ValidationError({"lead": ["No such lead."]})
        return attrs


class EventSerializer(serializers.ModelSerializer[Event]):
    class Meta:
        model = Event
        fields = [
            "id",
            "lead",
            "type",
            "name",
            "properties",
            "occurred_at",
            "received_at",
            "source",
            "processed_at",
        ]
        read_only_fields = fields


class EmailEventInSerializer(serializers.Serializer[dict[str, Any]]):
    """Email activity from a provider Leadflow has no webhook parser for, or a reply
    detected by your own mail system."""

    type = serializers.ChoiceField(
        choices=[
            "delivered",
            "opened",
            "clicked",
            "replied",
            "bounced",
            "complained",
            "unsubscribed",
        ]
    )
    email = serializers.EmailField(max_length=254)
    event_id = serializers.CharField(required=False, max_length=200)
    occurred_at = UtcDateTimeField(required=False)
    message_id = serializers.CharField(required=False, max_length=255, allow_blank=True)
    campaign = serializers.CharField(required=False, max_length=255, allow_blank=True)
    url = serializers.URLField(required=False, max_length=2000, allow_blank=True)
    provider = serializers.SlugField(required=False, max_length=30, default="generic")
    bounce_type = serializers.ChoiceField(
        choices=["hard", "soft"],
        required=False,
        default="hard",
        help_text=(
            "For a bounce: hard (the address does not exist; no more marketing "
            "email goes to it) or soft (a full mailbox, a server down)."
        ),
    )


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class AcceptedSerializer(serializers.Serializer[dict[str, Any]]):
    accepted = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.IntegerField())

"""Email templates API: list, create, read, change, delete, and a preview for a
lead. Admins and marketers only (sales reps write no email)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import ProtectedError, QuerySet
from django.utils import translation
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.roles import ADMIN_MARKETER
from emails.blocks import BLOCK_TYPES
from emails.models import EmailKind, EmailTemplate, Sender
from emails.services import (
    TEMPLATE_FIELDS,
    TemplateInvalid,
    template_create,
    template_delete,
    template_preview,
    template_update,
)
from leads.api.permissions import RoleAccess
from leads.selectors import leads_visible_to, user_language

BLOCKS_HELP = (
    "The body: a list of blocks, each an object with a `type`: "
    + ", ".join(f"`{kind}`" for kind in BLOCK_TYPES)
    + ". heading {text, level: 1|2}; text {text: Markdown}; button {label, url, color?}; "
    "image {src, alt, link?, width?}; divider {}; spacer {height}; columns {left: [...], "
    'right: [...]}. Merge tags like {{ first_name | default: "there" }} may appear in '
    "texts, labels and URLs."
)


class EmailTemplateSerializer(serializers.ModelSerializer[EmailTemplate]):
    blocks = serializers.JSONField(required=False, help_text=BLOCKS_HELP)
    kind = serializers.ChoiceField(choices=EmailKind.choices, default=EmailKind.MARKETING)
    sender = serializers.PrimaryKeyRelatedField(
        queryset=Sender.objects.all(),
        required=False,
        allow_null=True,
        help_text="The sender's id (null: the default address).",
    )
    revision = serializers.IntegerField(
        read_only=True, help_text="Moves on every change of the template."
    )

    class Meta:
        model = EmailTemplate
        fields = [
            "id",
            "name",
            "subject",
            "preheader",
            "sender",
            "kind",
            "blocks",
            "revision",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "revision", "created_at", "updated_at"]

    def _saved(self, save: Any) -> EmailTemplate:
        try:
            return save()  # type: ignore[no-any-return]
        except TemplateInvalid as invalid:
            raise ValidationError(invalid.fields) from None

    def create(self, validated_data: dict[str, Any]) -> EmailTemplate:
        request = self.context["request"]
        user = request.user if isinstance(request.user, User) else None
        return self._saved(
            lambda: template_create(
                name=validated_data["name"],
                subject=validated_data["subject"],
                preheader=validated_data.get("preheader", ""),
                sender=validated_data.get("sender"),
                kind=validated_data.get("kind", EmailKind.MARKETING),
                blocks=validated_data.get("blocks", []),
                created_by=user,
            )
        )

    def update(self, instance: EmailTemplate, validated_data: dict[str, Any]) -> EmailTemplate:
        changes = {name: value for name, value in validated_data.items() if name in TEMPLATE_FIELDS}
        return self._saved(lambda: template_update(template=instance, **changes))


class EmailPreviewSerializer(serializers.Serializer[dict[str, Any]]):
    lead = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, help_text="The id of the lead to render the email for."
    )


PreviewResult = inline_serializer(
    "EmailPreview",
    {
        "subject": serializers.CharField(),
        "preheader": serializers.CharField(),
        "html": serializers.CharField(help_text="The whole HTML document."),
        "text": serializers.CharField(help_text="The plain-text part."),
    },
)


class EmailTemplateViewSet(viewsets.ModelViewSet[EmailTemplate]):
    """Email templates. Saving checks the blocks and the merge tags: an unknown
    field is named in the 400's `fields`."""

    serializer_class = EmailTemplateSerializer
    permission_classes = [RoleAccess]
    read_roles = ADMIN_MARKETER
    write_roles = ADMIN_MARKETER

    def get_queryset(self) -> QuerySet[EmailTemplate]:
        return EmailTemplate.objects.order_by("-id")

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with translation.override(translation.get_language()):
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        language = user_language(request.user)
        if language and language != translation.get_language():
            translation.activate(language)

    def perform_destroy(self, instance: EmailTemplate) -> None:
        try:
            template_delete(template=instance)
        except ProtectedError:
            raise ValidationError(
                {"template": ["Flows still send this template; remove it from them first."]}
            ) from None

    @extend_schema(
        request=EmailPreviewSerializer,
        responses={200: PreviewResult, 400: OpenApiResponse(description="No such lead.")},
    )
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """The template rendered for a lead, as it would be sent (with the footer's
        unsubscribe link pointing nowhere, and no tracking)."""
        template = self.get_object()
        serializer = EmailPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lead = (
            leads_visible_to(request.user)
            .select_related("owner")
            .filter(pk=serializer.validated_data["lead"])
            .first()
        )
        if lead is None:
            raise ValidationError({"lead": ["There is no lead with this id."]})
        rendered = template_preview(template=template, lead=lead)
        return Response(
            {
                "subject": rendered.subject,
                "preheader": rendered.preheader,
                "html": rendered.html,
                "text": rendered.text,
            }
        )

"""Scoring API: a lead's score with its breakdown and ledger, manual adjustment,
score categories and the grade / MQL settings."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import ADMIN_MARKETER, ALL_ROLES, Role
from core.vocabulary import EngagementGrade, FitGrade
from leads.api.permissions import RoleAccess
from leads.models import Lead
from leads.roles import user_role
from leads.selectors import leads_visible_to
from scoring.models import ScoreCategory, ScoreChange, ScoringSettings
from scoring.rules import category_problems, settings_problems
from scoring.selectors import ScoreBreakdown, ScoreReason, axis_caps, lead_score_breakdown
from scoring.services import (
    CategoryDeleteRefused,
    score_adjust_by_hand,
    score_category_delete,
    score_category_update,
    scoring_settings,
    scoring_settings_update,
)


class ScoreChangeSerializer(serializers.ModelSerializer[ScoreChange]):
    category: serializers.SlugRelatedField[ScoreCategory] = serializers.SlugRelatedField(
        slug_field="key", read_only=True
    )
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Who changed the score by hand; null for rules, flows and decay.",
    )

    class Meta:
        model = ScoreChange
        fields = [
            "id",
            "delta",
            "capped",
            "category",
            "reason",
            "source",
            "created_by",
            "created_at",
            "occurred_at",
            "offsets",
        ]
        read_only_fields = fields


class AdjustSerializer(serializers.Serializer[dict[str, Any]]):
    delta = serializers.IntegerField(min_value=-10_000, max_value=10_000)
    category = serializers.SlugRelatedField(slug_field="key", queryset=ScoreCategory.objects.all())
    reason = serializers.CharField(max_length=255)

    def validate_delta(self, value: int) -> int:
        if value == 0:
            raise ValidationError("A change of 0 points changes nothing.")
        return value


def _merged(instance: Any, attrs: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The values as they would be saved: a partial update keeps the rest."""
    return {name: attrs.get(name, getattr(instance, name, None)) for name in fields}


class ScoreCategorySerializer(serializers.ModelSerializer[ScoreCategory]):
    class Meta:
        model = ScoreCategory
        fields = [
            "id",
            "key",
            "label",
            "builtin",
            "cap",
            "decay_mode",
            "decay_days",
            "decay_percent",
        ]
        read_only_fields = ["id", "builtin"]
        extra_kwargs = {
            "cap": {"help_text": "Points past the cap are written down but not counted."},
            "decay_days": {"help_text": "expire: days until points expire; percent: the period."},
            "decay_percent": {"help_text": "percent: share of the points lost per period."},
        }

    def validate_key(self, value: str) -> str:
        if self.instance is not None and value != self.instance.key:
            raise ValidationError("The key of a category cannot change.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        fields = ["cap", "decay_mode", "decay_days", "decay_percent"]
        key = self.instance.key if self.instance is not None else attrs.get("key", "")
        problems = category_problems(
            _merged(self.instance, attrs, fields), key=key, settings=scoring_settings()
        )
        if problems:
            raise ValidationError(problems)
        return attrs


class ScoringSettingsSerializer(serializers.ModelSerializer[ScoringSettings]):
    hot_min_fit = serializers.ChoiceField(
        choices=FitGrade.choices, required=False, help_text="With hot_rule axes."
    )
    hot_min_engagement = serializers.ChoiceField(
        choices=EngagementGrade.choices, required=False, help_text="With hot_rule axes."
    )

    class Meta:
        model = ScoringSettings
        fields = [
            "warm_threshold",
            "hot_threshold",
            "mql_threshold",
            "mql_moves_stage",
            "sales_can_adjust",
            "hot_rule",
            "hot_min_fit",
            "hot_min_engagement",
            "fit_a",
            "fit_b",
            "fit_c",
            "engagement_1",
            "engagement_2",
            "engagement_3",
            "total_cap",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        problems = settings_problems(_merged(self.instance, attrs, self.Meta.fields), axis_caps())
        if problems:
            raise ValidationError(problems)
        return attrs


class ScoreReasonFlowSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ScoreReasonNodeSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.CharField()
    type = serializers.CharField()
    # A field named like a Field attribute: DRF allows it, the stubs do not.
    label = serializers.CharField()  # type: ignore[assignment]


class ScoreReasonSerializer(serializers.Serializer[ScoreReason]):
    """One reason of the breakdown (``scoring.selectors.ScoreReason``)."""

    category = serializers.CharField()
    reason = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]  # as ``label`` above
    points = serializers.IntegerField()
    changes = serializers.IntegerField()
    capped = serializers.IntegerField(help_text="Points of these changes a cap kept out.")
    summary = serializers.CharField(
        help_text='What the changes are, in words: "+10 Engagement, capped at 100", '
        '"-6 Engagement: no activity for 30 days".'
    )
    user = serializers.SerializerMethodField(
        help_text="Who changed the score by hand; null for flows, decay and the system."
    )
    flow = serializers.SerializerMethodField(
        help_text="The flow that gave the points; null when not a flow or the flow is deleted."
    )
    node = serializers.SerializerMethodField(help_text="The flow's step that gave the points.")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_user(self, reason: ScoreReason) -> str | None:
        return reason.user.get_username() if reason.user is not None else None

    @extend_schema_field(ScoreReasonFlowSerializer(allow_null=True))
    def get_flow(self, reason: ScoreReason) -> dict[str, Any] | None:
        if reason.flow_id is None:
            return None
        return {"id": reason.flow_id, "name": reason.flow_name}

    @extend_schema_field(ScoreReasonNodeSerializer(allow_null=True))
    def get_node(self, reason: ScoreReason) -> dict[str, Any] | None:
        if not reason.node_id:
            return None
        return {"id": reason.node_id, "type": reason.node_type, "label": reason.node_label}


class ScoreBreakdownSerializer(serializers.Serializer[ScoreBreakdown]):
    """``scoring.selectors.ScoreBreakdown``, as the lead profile shows it."""

    score = serializers.IntegerField()
    grade = serializers.CharField()
    categories = serializers.SerializerMethodField()
    reasons = ScoreReasonSerializer(many=True)

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_categories(self, breakdown: ScoreBreakdown) -> dict[str, int]:
        return {key: points for key, _label, points in breakdown.categories}


class LeadScoreView(viewsets.GenericViewSet[ScoreChange]):
    """A lead's score: total, grade, per category, and where the points came from."""

    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ALL_ROLES
    serializer_class = ScoreChangeSerializer
    queryset = ScoreChange.objects.none()

    def _lead(self, request: Request, lead_pk: int) -> Lead:
        lead = leads_visible_to(request.user).filter(pk=lead_pk).first()
        if lead is None:
            raise Http404
        return lead

    @extend_schema(responses=ScoreBreakdownSerializer)
    def breakdown(self, request: Request, lead_pk: int) -> Response:
        lead = self._lead(request, lead_pk)
        return Response(ScoreBreakdownSerializer(lead_score_breakdown(lead=lead)).data)

    @extend_schema(responses=ScoreChangeSerializer(many=True))
    def ledger(self, request: Request, lead_pk: int) -> Response:
        lead = self._lead(request, lead_pk)
        changes = ScoreChange.objects.filter(lead=lead).select_related("category", "created_by")
        page = self.paginate_queryset(changes)
        return self.get_paginated_response(ScoreChangeSerializer(page, many=True).data)

    @extend_schema(request=AdjustSerializer, responses={201: ScoreChangeSerializer})
    def adjust(self, request: Request, lead_pk: int) -> Response:
        """Add or take away points by hand, with a reason; logged with the user."""
        lead = self._lead(request, lead_pk)
        role = user_role(request.user)
        if role == Role.SALES and not scoring_settings().sales_can_adjust:
            raise PermissionDenied("Manual score changes by sales reps are turned off.")
        serializer = AdjustSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = request.user if isinstance(request.user, User) else None
        change = score_adjust_by_hand(
            lead=lead,
            delta=data["delta"],
            category=data["category"],
            reason=data["reason"],
            user=user,
        )
        return Response(ScoreChangeSerializer(change).data, status=status.HTTP_201_CREATED)


class ScoreCategoryViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[ScoreCategory],
):
    """Score categories: fit and engagement are built in; add your own."""

    queryset = ScoreCategory.objects.all()
    serializer_class = ScoreCategorySerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ADMIN_MARKETER

    def perform_update(self, serializer: serializers.BaseSerializer[ScoreCategory]) -> None:
        """Through the service: the change goes into the review log."""
        user = self.request.user if isinstance(self.request.user, User) else None
        assert serializer.instance is not None
        serializer.instance = score_category_update(
            category=serializer.instance, user=user, **serializer.validated_data
        )

    def perform_destroy(self, instance: ScoreCategory) -> None:
        try:
            score_category_delete(category=instance)
        except CategoryDeleteRefused as refused:
            raise ValidationError({"key": [str(refused)]}) from refused


class ScoringSettingsView(APIView):
    """Grade thresholds (cold below warm, hot at or above hot, or hot by both
    axes), fit A/B/C and engagement 1/2/3 thresholds, the total's cap and the
    MQL rule. A change to anything a grade depends on regrades every lead; each
    change goes into the review log."""

    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = frozenset({Role.ADMIN})
    serializer_class = ScoringSettingsSerializer

    def get(self, request: Request) -> Response:
        return Response(ScoringSettingsSerializer(scoring_settings()).data)

    def put(self, request: Request) -> Response:
        return self._save(request, partial=False)

    def patch(self, request: Request) -> Response:
        return self._save(request, partial=True)

    def _save(self, request: Request, *, partial: bool) -> Response:
        serializer = ScoringSettingsSerializer(
            scoring_settings(), data=request.data, partial=partial
        )
        serializer.is_valid(raise_exception=True)
        user = request.user if isinstance(request.user, User) else None
        settings = scoring_settings_update(user=user, **serializer.validated_data)
        return Response(ScoringSettingsSerializer(settings).data)

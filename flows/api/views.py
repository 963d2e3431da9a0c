"""Flows API: CRUD, the draft graph, validate, publish, pause / resume, versions,
enrollments and their step logs, per-node stats, and the node registry."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flows.graph import GraphError, graph_validate
from flows.models import Enrollment, Flow, FlowStatus, FlowVersion, Reentry, StepRun
from flows.nodes import REGISTRY
from flows.services import (
    DraftConflict,
    flow_create,
    flow_draft_save,
    flow_node_stats,
    flow_publish,
    flow_set_status,
)
from leads.api.errors import error_body
from leads.api.permissions import ALL_ROLES, RoleAccess
from leads.models import Role
from leads.selectors import leads_visible_to

ADMIN_MARKETER = frozenset({Role.ADMIN, Role.MARKETER})


class FlowSerializer(serializers.ModelSerializer):
    reentry = serializers.ChoiceField(choices=Reentry.choices, default=Reentry.ONCE)
    published_version = serializers.IntegerField(
        source="published.number", read_only=True, default=None
    )

    class Meta:
        model = Flow
        fields = [
            "id",
            "name",
            "description",
            "status",
            "reentry",
            "reentry_days",
            "published_version",
            "draft_revision",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "published_version",
            "draft_revision",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        reentry = attrs.get("reentry", getattr(self.instance, "reentry", Reentry.ONCE))
        days = attrs.get("reentry_days", getattr(self.instance, "reentry_days", None))
        if reentry == Reentry.DAYS and not days:
            raise ValidationError({"reentry_days": ["Give the number of days."]})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Flow:
        request = self.context["request"]
        return flow_create(
            name=validated_data["name"],
            description=validated_data.get("description", ""),
            reentry=validated_data.get("reentry", Reentry.ONCE),
            reentry_days=validated_data.get("reentry_days"),
            created_by=request.user if isinstance(request.user, User) else None,
        )


class DraftSerializer(serializers.Serializer):
    graph = serializers.JSONField(
        help_text='{"nodes": [{id, type, config, position}], '
        '"edges": [{id, source, sourceHandle, target}]}'
    )
    revision = serializers.IntegerField(min_value=0, help_text="The draft_revision you loaded.")


class VersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = FlowVersion
        fields = ["id", "number", "graph", "created_by", "created_at"]
        read_only_fields = fields


class StepRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepRun
        fields = [
            "id",
            "node_id",
            "node_type",
            "visit",
            "status",
            "attempts",
            "output",
            "error",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class EnrollmentSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number", read_only=True)

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "flow",
            "version",
            "lead",
            "trigger_event",
            "trigger_node",
            "status",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


def _problems(exc: GraphError) -> Response:
    body = error_body("invalid_graph", "The flow has problems; see each node.")
    body["error"]["nodes"] = exc.problems.get("nodes", {})
    body["error"]["graph"] = exc.problems.get("graph", [])
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


class FlowViewSet(viewsets.ModelViewSet):
    """Flows. Admins and marketers edit; sales reps may read."""

    serializer_class = FlowSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ADMIN_MARKETER

    def get_queryset(self) -> QuerySet[Flow]:
        return Flow.objects.select_related("published").order_by("-id")

    @extend_schema(request=DraftSerializer, responses=DraftSerializer)
    @action(detail=True, methods=["get", "put"])
    def draft(self, request: Request, pk: str | None = None) -> Response:
        """The draft graph. PUT with the revision you loaded; a 409 means someone
        saved in between (reload, then save again)."""
        flow = self.get_object()
        if request.method == "GET":
            return Response({"graph": flow.draft, "revision": flow.draft_revision})
        serializer = DraftSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        graph = serializer.validated_data["graph"]
        if (
            not isinstance(graph, dict)
            or not isinstance(graph.get("nodes"), list)
            or not isinstance(graph.get("edges", []), list)
        ):
            raise ValidationError({"graph": ['Expected {"nodes": [...], "edges": [...]}.']})
        try:
            saved = flow_draft_save(
                flow=flow, graph=graph, revision=serializer.validated_data["revision"]
            )
        except DraftConflict:
            return Response(
                error_body(
                    "conflict",
                    "This flow was saved elsewhere since you loaded it. "
                    "Reload to see the latest draft.",
                ),
                status=status.HTTP_409_CONFLICT,
            )
        return Response({"graph": saved.draft, "revision": saved.draft_revision})

    @extend_schema(request=None, responses={200: None})
    @action(detail=True, methods=["post"])
    def validate(self, request: Request, pk: str | None = None) -> Response:
        """Check the draft as publishing would; problems come back per node."""
        flow = self.get_object()
        try:
            graph_validate(flow.draft)
        except GraphError as exc:
            return _problems(exc)
        return Response({"valid": True})

    @extend_schema(request=None, responses={201: VersionSerializer})
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        flow = self.get_object()
        try:
            version = flow_publish(
                flow=flow, user=request.user if isinstance(request.user, User) else None
            )
        except GraphError as exc:
            return _problems(exc)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    def _status(self, status_value: str) -> Response:
        flow = self.get_object()
        try:
            flow = flow_set_status(flow=flow, status=status_value)
        except GraphError as exc:
            return _problems(exc)
        return Response(FlowSerializer(flow).data)

    @extend_schema(request=None, responses=FlowSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """No new enrollments; waiting ones hold until resumed."""
        return self._status(FlowStatus.PAUSED)

    @extend_schema(request=None, responses=FlowSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._status(FlowStatus.ACTIVE)

    @extend_schema(request=None, responses=FlowSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        return self._status(FlowStatus.ARCHIVED)

    @extend_schema(responses=VersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        flow = self.get_object()
        page = self.paginate_queryset(flow.versions.select_related("created_by").order_by("-id"))
        return self.get_paginated_response(VersionSerializer(page, many=True).data)

    @extend_schema(responses=EnrollmentSerializer(many=True))
    @action(detail=True, methods=["get"])
    def enrollments(self, request: Request, pk: str | None = None) -> Response:
        flow = self.get_object()
        enrollments = Enrollment.objects.filter(
            flow=flow, lead__in=leads_visible_to(request.user)
        ).select_related("version")
        node = request.query_params.get("node")
        if node:
            enrollments = enrollments.filter(steps__node_id=node).distinct()
        page = self.paginate_queryset(enrollments.order_by("-id"))
        return self.get_paginated_response(EnrollmentSerializer(page, many=True).data)

    @extend_schema(
        responses=inline_serializer(
            "FlowNodeStats", {"nodes": serializers.DictField(child=serializers.DictField())}
        )
    )
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        """Per node: entered, completed, waiting, failed."""
        return Response({"nodes": flow_node_stats(flow=self.get_object())})


class EnrollmentViewSet(viewsets.ReadOnlyModelViewSet):
    """Enrollments with their step logs; filter by ``lead`` or ``flow``."""

    serializer_class = EnrollmentSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES

    def get_queryset(self) -> QuerySet[Enrollment]:
        enrollments = Enrollment.objects.filter(
            lead__in=leads_visible_to(self.request.user)
        ).select_related("version")
        for param in ("lead", "flow"):
            value = self.request.query_params.get(param, "")
            if value:
                if not value.isdigit() or int(value) > 2**63 - 1:
                    raise ValidationError({param: ["Expected an id."]})
                enrollments = enrollments.filter(**{f"{param}_id": int(value)})
        return enrollments

    @extend_schema(responses=StepRunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def steps(self, request: Request, pk: str | None = None) -> Response:
        enrollment = self.get_object()
        page = self.paginate_queryset(StepRun.objects.filter(enrollment=enrollment).order_by("-id"))
        return self.get_paginated_response(StepRunSerializer(page, many=True).data)


class LeadEnrollmentSerializer(EnrollmentSerializer):
    flow_name = serializers.CharField(source="flow.name", read_only=True)
    steps = StepRunSerializer(many=True, read_only=True)

    class Meta(EnrollmentSerializer.Meta):
        fields = [*EnrollmentSerializer.Meta.fields, "flow_name", "steps"]
        read_only_fields = fields


class LeadEnrollmentsViewSet(viewsets.GenericViewSet):
    """The flows a lead is or was in, newest first, each with its step log."""

    serializer_class = LeadEnrollmentSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    queryset = Enrollment.objects.none()

    def list(self, request: Request, lead_pk: int) -> Response:
        lead = leads_visible_to(request.user).filter(pk=lead_pk).first()
        if lead is None:
            raise Http404
        enrollments = (
            Enrollment.objects.filter(lead=lead)
            .select_related("flow", "version")
            .prefetch_related(Prefetch("steps", StepRun.objects.order_by("id")))
            .order_by("-id")
        )
        page = self.paginate_queryset(enrollments)
        return self.get_paginated_response(LeadEnrollmentSerializer(page, many=True).data)


class NodeTypesView(APIView):
    """Every node type: kind, label, description, icon, outputs and a JSON Schema
    of its configuration, straight from the node registry."""

    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES

    @extend_schema(responses=inline_serializer("NodeTypes", {"results": serializers.ListField()}))
    def get(self, request: Request) -> Response:
        return Response({"results": [node.describe() for node in REGISTRY.values()]})

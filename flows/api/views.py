"""Flows API: CRUD (optionally from a template; names unique, case ignored; only
a flow never published can be deleted), duplicate, the draft graph, validate,
publish, pause / resume, archive / unarchive, versions and restoring one,
enrollments and their step logs, per-node stats, the node registry and the
flow templates."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import translation
from django.utils.translation import gettext
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import ADMIN_MARKETER, ALL_ROLES
from flows.changes import graph_differs
from flows.dryrun import flow_dry_run
from flows.graph import GraphError, graph_mask, graph_unmask, graph_validate
from flows.lifecycle import (
    DraftConflict,
    FlowRefused,
    flow_create,
    flow_delete,
    flow_draft_save,
    flow_duplicate,
    flow_publish,
    flow_set_status,
    flow_unarchive,
    flow_update,
    flow_version_restore,
)
from flows.models import Enrollment, Flow, FlowStatus, FlowVersion, Reentry, StepRun, StepStatus
from flows.nodes import REGISTRY
from flows.selectors import flow_node_stats
from flows.templates_catalog import FLOW_TEMPLATES, TEMPLATES, flow_create_from_template
from leads.api.errors import error_body
from leads.api.pagination import page_of_related
from leads.api.permissions import RoleAccess
from leads.selectors import leads_visible_to, user_language


class FlowSerializer(serializers.ModelSerializer[Flow]):
    reentry = serializers.ChoiceField(choices=Reentry.choices, default=Reentry.ONCE)
    template = serializers.ChoiceField(
        choices=[(t.key, t.name) for t in TEMPLATES],
        required=False,
        write_only=True,
        help_text="On create: start from this template's graph (see /api/v1/flows/templates/); "
        "name, description and re-entry default to the template's.",
    )
    published_version = serializers.IntegerField(
        source="published.number", read_only=True, default=None, allow_null=True
    )
    unpublished_changes = serializers.SerializerMethodField(
        help_text="Whether the draft would do something the published version does not "
        "(steps, settings or connections; moving steps on the canvas is no change)."
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
            "unpublished_changes",
            "draft_revision",
            "created_at",
            "updated_at",
            "template",
        ]
        extra_kwargs = {"name": {"required": False}}
        read_only_fields = [
            "id",
            "status",
            "published_version",
            "unpublished_changes",
            "draft_revision",
            "created_at",
            "updated_at",
        ]

    def get_unpublished_changes(self, flow: Flow) -> bool:
        return flow.published is not None and graph_differs(flow.published.graph, flow.draft)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        template = FLOW_TEMPLATES.get(attrs.get("template", ""))
        if template is not None and self.instance is not None:
            raise ValidationError(
                {"template": [gettext("A template applies only when creating a flow.")]}
            )
        # A template names the flow when no name is given; otherwise a name is needed.
        if "name" not in attrs and not self.partial and template is None:
            raise ValidationError({"name": [gettext("This field is required.")]})
        if template is not None and "reentry" not in self.initial_data:
            attrs["reentry"] = template.reentry
            attrs.setdefault("reentry_days", template.reentry_days)
        reentry = attrs.get("reentry", getattr(self.instance, "reentry", Reentry.ONCE))
        days = attrs.get("reentry_days", getattr(self.instance, "reentry_days", None))
        if reentry == Reentry.DAYS and not days:
            raise ValidationError({"reentry_days": [gettext("Give the number of days.")]})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Flow:
        request = self.context["request"]
        user = request.user if isinstance(request.user, User) else None
        template = FLOW_TEMPLATES.get(validated_data.get("template", ""))
        try:
            if template is not None:
                return flow_create_from_template(
                    template=template,
                    name=validated_data.get("name", ""),
                    description=validated_data.get("description"),
                    reentry=validated_data["reentry"],
                    reentry_days=validated_data.get("reentry_days"),
                    created_by=user,
                )
            return flow_create(
                name=validated_data["name"],
                description=validated_data.get("description", ""),
                reentry=validated_data.get("reentry", Reentry.ONCE),
                reentry_days=validated_data.get("reentry_days"),
                created_by=user,
            )
        except FlowRefused as refused:
            raise ValidationError({refused.field: [refused.message]}) from refused

    def update(self, instance: Flow, validated_data: dict[str, Any]) -> Flow:
        rule = "reentry" in validated_data or "reentry_days" in validated_data
        try:
            return flow_update(
                flow=instance,
                name=validated_data.get("name"),
                description=validated_data.get("description"),
                reentry=validated_data.get("reentry", instance.reentry) if rule else None,
                reentry_days=validated_data.get("reentry_days", instance.reentry_days),
            )
        except FlowRefused as refused:
            raise ValidationError({refused.field: [refused.message]}) from refused


class DraftSerializer(serializers.Serializer[dict[str, Any]]):
    graph = serializers.JSONField(
        help_text='{"nodes": [{id, type, config, position}], '
        '"edges": [{id, source, sourceHandle, target}]}'
    )
    revision = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, help_text="The draft_revision you loaded."
    )


class VersionSerializer(serializers.ModelSerializer[FlowVersion]):
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = FlowVersion
        fields = ["id", "number", "graph", "created_by", "created_at"]
        read_only_fields = fields

    def to_representation(self, instance: FlowVersion) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["graph"] = graph_mask(data["graph"])
        return data


class StepRunSerializer(serializers.ModelSerializer[StepRun]):
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


class EnrollmentSerializer(serializers.ModelSerializer[Enrollment]):
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
    body = error_body("invalid_graph", gettext("The flow has problems; see each node."))
    body["error"]["nodes"] = exc.problems.get("nodes", {})
    body["error"]["graph"] = exc.problems.get("graph", [])
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


class DryRunEventSerializer(serializers.Serializer[dict[str, Any]]):
    type = serializers.CharField(
        max_length=40, help_text="track, page, form.submitted, email.opened, segment.entered …"
    )
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    properties = serializers.DictField(required=False, default=dict)


class DryRunSerializer(serializers.Serializer[dict[str, Any]]):
    lead = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    event = DryRunEventSerializer(
        required=False,
        allow_null=True,
        help_text="A made-up event; without it, the lead's latest event that matches a trigger.",
    )
    graph = serializers.JSONField(
        required=False, help_text="The graph to test; the flow's draft when left out."
    )


class DryRunStepSerializer(serializers.Serializer[dict[str, Any]]):
    node = serializers.CharField()
    type = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["matched", "would_apply", "no_change", "yes", "no", "waited", "timeout", "ended"]
    )
    effect = serializers.CharField(help_text="What the step would do, in words.")
    handle = serializers.CharField(
        allow_null=True, help_text="The output it goes on through; null where the flow ends."
    )


class DryRunResultSerializer(serializers.Serializer[dict[str, Any]]):
    trigger = inline_serializer(
        "DryRunTrigger",
        {
            "matched": serializers.BooleanField(),
            "node": serializers.CharField(required=False),
            "type": serializers.CharField(required=False),
            "summary": serializers.CharField(required=False),
            "reason": serializers.CharField(required=False, help_text="Why nothing matched."),
            "event": inline_serializer(
                "DryRunEvent",
                {
                    "id": serializers.IntegerField(allow_null=True),
                    "type": serializers.CharField(),
                    "name": serializers.CharField(),
                    "properties": serializers.DictField(),
                    "occurred_at": serializers.DateTimeField(),
                    "made_up": serializers.BooleanField(),
                },
                allow_null=True,
            ),
        },
    )
    entry = inline_serializer(
        "DryRunEntry",
        {"allowed": serializers.BooleanField(), "reason": serializers.CharField()},
        help_text="Whether the flow's re-entry rule lets the lead in now.",
    )
    steps = DryRunStepSerializer(many=True)
    path = serializers.ListField(child=serializers.CharField(), help_text="Node ids, in order.")
    edges = serializers.ListField(child=serializers.CharField(), help_text="Edge ids taken.")
    notes = serializers.ListField(child=serializers.CharField())


# The enrollments behind a node's stats: the step states each count covers.
STEP_STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "entered": (),
    "completed": (StepStatus.COMPLETED,),
    "waiting": (StepStatus.WAITING, StepStatus.RETRYING),
    "failed": (StepStatus.FAILED,),
}


class UserLanguageMixin:
    """Answer in the user's saved language. A browser session gets it from the
    middleware already; an API key or a forced login authenticates inside DRF,
    after the middleware ran. The language the request came with is back after."""

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with translation.override(translation.get_language()):
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        language = user_language(request.user)
        if language and language != translation.get_language():
            translation.activate(language)
            request.LANGUAGE_CODE = language


class FlowViewSet(UserLanguageMixin, viewsets.ModelViewSet[Flow]):
    """Flows, for admins and marketers only: graphs name the team's endpoints
    and how leads are scored. Secrets in node configs come back masked."""

    serializer_class = FlowSerializer
    permission_classes = [RoleAccess]
    read_roles = ADMIN_MARKETER
    write_roles = ADMIN_MARKETER

    def get_queryset(self) -> QuerySet[Flow]:
        return Flow.objects.select_related("published").order_by("-id")

    def perform_destroy(self, instance: Flow) -> None:
        """Only a flow never published: a published one is archived instead (400)."""
        try:
            flow_delete(flow=instance)
        except FlowRefused as refused:
            raise ValidationError({refused.field: [refused.message]}) from refused

    @extend_schema(
        request=inline_serializer(
            "FlowDuplicate",
            {
                "name": serializers.CharField(
                    required=False,
                    max_length=200,
                    help_text="The copy's name; “Copy of …” when left out.",
                )
            },
        ),
        responses={201: FlowSerializer},
    )
    @action(detail=True, methods=["post"])
    def duplicate(self, request: Request, pk: str | None = None) -> Response:
        """A new draft flow with this flow's draft, description and re-entry rule."""
        flow = self.get_object()
        name = request.data.get("name", "") if isinstance(request.data, dict) else ""
        if not isinstance(name, str):
            raise ValidationError({"name": [gettext("Expected text.")]})
        try:
            copy = flow_duplicate(
                flow=flow,
                name=name,
                created_by=request.user if isinstance(request.user, User) else None,
            )
        except FlowRefused as refused:
            raise ValidationError({refused.field: [refused.message]}) from refused
        return Response(FlowSerializer(copy).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], responses=DraftSerializer)
    @extend_schema(
        methods=["PUT"],
        request=DraftSerializer,
        responses={
            200: DraftSerializer,
            409: OpenApiResponse(description="Saved elsewhere since you loaded it."),
        },
    )
    @action(detail=True, methods=["get", "put"])
    def draft(self, request: Request, pk: str | None = None) -> Response:
        """The draft graph. PUT with the revision you loaded; a 409 means someone
        saved in between (reload, then save again)."""
        flow = self.get_object()
        if request.method == "GET":
            return Response({"graph": graph_mask(flow.draft), "revision": flow.draft_revision})
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
                    gettext(
                        "This flow was saved elsewhere since you loaded it. "
                        "Reload to see the latest draft."
                    ),
                ),
                status=status.HTTP_409_CONFLICT,
            )
        return Response({"graph": graph_mask(saved.draft), "revision": saved.draft_revision})

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

    @extend_schema(request=DryRunSerializer, responses=DryRunResultSerializer)
    @action(detail=True, methods=["post"], url_path="dry-run")
    def dry_run(self, request: Request, pk: str | None = None) -> Response:
        """Test the flow on a lead: the path a trigger event (made up, or the lead's
        latest matching one) would take it along, and each step's effect, with
        nothing applied. Conditions count the changes of the steps before them."""
        flow = self.get_object()
        serializer = DryRunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lead = leads_visible_to(request.user).filter(pk=data["lead"]).first()
        if lead is None:
            raise ValidationError({"lead": [gettext("No lead %(id)s.") % {"id": data["lead"]}]})
        # A graph from the canvas carries its secrets masked: test with the stored ones.
        graph = graph_unmask(data["graph"], stored=flow.draft) if "graph" in data else flow.draft
        try:
            result = flow_dry_run(flow=flow, graph=graph, lead=lead, event=data.get("event"))
        except GraphError as exc:
            return _problems(exc)
        return Response(result)

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

    @extend_schema(request=None, responses=FlowSerializer)
    @action(detail=True, methods=["post"])
    def unarchive(self, request: Request, pk: str | None = None) -> Response:
        """Bring an archived flow back: paused if it was published, else a draft."""
        return Response(FlowSerializer(flow_unarchive(flow=self.get_object())).data)

    @extend_schema(responses=VersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        flow = self.get_object()
        page = page_of_related(self, flow.versions.select_related("created_by").order_by("-id"))
        return self.get_paginated_response(VersionSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses=DraftSerializer,
        parameters=[
            OpenApiParameter(
                "number", int, OpenApiParameter.PATH, description="The published version's number."
            )
        ],
    )
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]{1,9})/restore")
    def restore(self, request: Request, pk: str | None = None, number: str = "") -> Response:
        """Make a published version the draft again (publish to make it live). The
        revision moves on: an editor holding the old draft gets a 409 on saving."""
        flow = self.get_object()
        version = get_object_or_404(FlowVersion, flow=flow, number=int(number))
        restored = flow_version_restore(
            flow=flow,
            version=version,
            user=request.user if isinstance(request.user, User) else None,
        )
        return Response({"graph": graph_mask(restored.draft), "revision": restored.draft_revision})

    @extend_schema(
        responses=inline_serializer(
            "FlowTemplates",
            {
                "results": inline_serializer(
                    "FlowTemplate",
                    {
                        "key": serializers.CharField(),
                        "name": serializers.CharField(),
                        "description": serializers.CharField(),
                    },
                    many=True,
                )
            },
        )
    )
    @action(detail=False, methods=["get"])
    def templates(self, request: Request) -> Response:
        """What a new flow can start from: pass a ``key`` as ``template`` when
        creating one."""
        return Response(
            {
                "results": [
                    {"key": t.key, "name": t.name, "description": t.description} for t in TEMPLATES
                ]
            }
        )

    @extend_schema(
        responses=EnrollmentSerializer(many=True),
        parameters=[
            OpenApiParameter("node", str, description="Only enrollments that reached this node."),
            OpenApiParameter(
                "status",
                str,
                enum=list(STEP_STATUS_FILTERS),
                description="Only enrollments with a step in this state at ``node`` (at any "
                "node without it), as the node's stats count them: entered (any step), "
                "completed, waiting (waiting or retrying) or failed.",
            ),
        ],
    )
    @action(detail=True, methods=["get"])
    def enrollments(self, request: Request, pk: str | None = None) -> Response:
        """Newest first; ``node`` and ``status`` list the leads behind a node's counts."""
        flow = self.get_object()
        enrollments = Enrollment.objects.filter(
            flow=flow, lead__in=leads_visible_to(request.user)
        ).select_related("version")
        node = request.query_params.get("node", "")
        wanted = request.query_params.get("status", "")
        if wanted and wanted not in STEP_STATUS_FILTERS:
            raise ValidationError(
                {
                    "status": [
                        gettext("Expected one of: %(values)s.")
                        % {"values": ", ".join(STEP_STATUS_FILTERS)}
                    ]
                }
            )
        # One filter() call: the node and the status are those of the same step.
        step: dict[str, Any] = {}
        if node:
            step["steps__node_id"] = node
        if STEP_STATUS_FILTERS.get(wanted):
            step["steps__status__in"] = STEP_STATUS_FILTERS[wanted]
        if step:
            enrollments = enrollments.filter(**step).distinct()
        page = page_of_related(self, enrollments.order_by("-id"))
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


class EnrollmentViewSet(viewsets.ReadOnlyModelViewSet[Enrollment]):
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
                    raise ValidationError({param: [gettext("Expected an id.")]})
                enrollments = enrollments.filter(**{f"{param}_id": int(value)})
        return enrollments

    @extend_schema(responses=StepRunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def steps(self, request: Request, pk: str | None = None) -> Response:
        enrollment = self.get_object()
        page = page_of_related(self, StepRun.objects.filter(enrollment=enrollment).order_by("-id"))
        return self.get_paginated_response(StepRunSerializer(page, many=True).data)


class LeadEnrollmentSerializer(EnrollmentSerializer):
    flow_name = serializers.CharField(source="flow.name", read_only=True)
    steps = StepRunSerializer(many=True, read_only=True)

    class Meta(EnrollmentSerializer.Meta):
        fields = [*EnrollmentSerializer.Meta.fields, "flow_name", "steps"]
        read_only_fields = fields


class LeadEnrollmentsViewSet(viewsets.GenericViewSet[Enrollment]):
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


class NodeTypesView(UserLanguageMixin, APIView):
    """Every node type: kind, label, description, icon, outputs and a JSON Schema
    of its configuration, straight from the node registry."""

    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES

    @extend_schema(responses=inline_serializer("NodeTypes", {"results": serializers.ListField()}))
    def get(self, request: Request) -> Response:
        return Response({"results": [node.describe() for node in REGISTRY.values()]})

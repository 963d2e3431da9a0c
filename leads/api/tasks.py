"""Tasks and notifications API: the rules of the task pages (``leads.views.tasks``)
and their services. Sales reps list their own tasks and act on those the pages
let them act on; admins, marketers and ``full`` keys see every task.
Notifications belong to the person signed in."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import django_filters
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.roles import ADMIN_MARKETER, ALL_ROLES
from leads.api.errors import error_body
from leads.api.permissions import RoleAccess
from leads.api.serializers import UtcDateTimeField
from leads.api.views import MAX_ID, id_param, utc_or_refuse
from leads.models import Notification, Task, TaskPriority, TaskStatus
from leads.roles import ApiKeyPrincipal, user_role
from leads.selectors import task_assignees, tasks_actionable_by
from leads.services import tasks as task_services
from leads.services.tasks import snooze_until

SNOOZE_PRESETS = ("hour", "tomorrow", "next-week")
ALREADY_DONE = OpenApiResponse(description="The task is already done.")


def _person(request: Request) -> User | None:
    return request.user if isinstance(request.user, User) else None


class TaskSerializer(serializers.ModelSerializer[Task]):
    lead_name = serializers.SerializerMethodField()
    lead_email = serializers.EmailField(source="lead.email", read_only=True, allow_null=True)
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = [
            "id",
            "title",
            "lead",
            "lead_name",
            "lead_email",
            "assignee",
            "priority",
            "status",
            "due_at",
            "overdue",
            "created_at",
            "completed_at",
        ]
        read_only_fields = fields

    def get_lead_name(self, task: Task) -> str:
        return task.lead.full_name

    def get_overdue(self, task: Task) -> bool:
        return (
            task.status == TaskStatus.OPEN
            and task.due_at is not None
            and task.due_at < timezone.now()
        )


class SnoozeSerializer(serializers.Serializer[dict[str, Any]]):
    until = UtcDateTimeField(required=False, help_text="The new due time (future).")
    preset = serializers.ChoiceField(
        choices=SNOOZE_PRESETS,
        required=False,
        help_text="As on the tasks page: an hour from now, tomorrow 9:00, next Monday 9:00.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("until" in attrs) == ("preset" in attrs):
            raise ValidationError({"until": ["Give either until or preset."]})
        return attrs


class ReassignSerializer(serializers.Serializer[dict[str, Any]]):
    assignee = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text="A user id: an active sales rep or admin."
    )


class TaskFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=TaskStatus.choices)
    priority = django_filters.ChoiceFilter(choices=TaskPriority.choices)
    lead = django_filters.CharFilter(method="filter_lead", help_text="A lead id.")
    assignee = django_filters.CharFilter(
        method="filter_assignee", help_text="A user id, 'me' or 'none' (unassigned)."
    )
    due_before = django_filters.IsoDateTimeFilter(method="filter_due")
    due_after = django_filters.IsoDateTimeFilter(method="filter_due")

    class Meta:
        model = Task
        fields = ["status", "priority", "lead", "assignee", "due_before", "due_after"]

    def filter_lead(self, queryset: QuerySet[Task], name: str, value: str) -> QuerySet[Task]:
        return queryset.filter(lead_id=id_param(value, "lead"))

    def filter_assignee(self, queryset: QuerySet[Task], name: str, value: str) -> QuerySet[Task]:
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value == "me":
            return queryset.filter(assignee_id=getattr(self.request.user, "pk", None))
        if not value.isdigit() or int(value) > MAX_ID:
            raise ValidationError({"assignee": ["Expected a user id, 'me' or 'none'."]})
        return queryset.filter(assignee_id=int(value))

    def filter_due(self, queryset: QuerySet[Task], name: str, value: dt.datetime) -> QuerySet[Task]:
        lookup = "due_at__lt" if name == "due_before" else "due_at__gte"
        return queryset.filter(**{lookup: utc_or_refuse(value, name)})


def _refused(exc: DjangoValidationError, field: str) -> Response:
    """A service's refusal: a task already done is a conflict, anything else a
    bad value of ``field``."""
    message = " ".join(exc.messages)
    if getattr(exc, "code", None) == "done":
        return Response(error_body("done", message), status=status.HTTP_409_CONFLICT)
    raise ValidationError({field: [message]})


class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Task]):
    """Tasks, newest first. Sales reps list the tasks assigned to them; complete,
    snooze and reassign follow the task pages' rules."""

    serializer_class = TaskSerializer
    permission_classes = [RoleAccess]
    read_roles = ALL_ROLES
    write_roles = ALL_ROLES
    filterset_class = TaskFilter

    def get_queryset(self) -> QuerySet[Task]:
        if getattr(self, "swagger_fake_view", False):  # the schema's generation
            return Task.objects.none()
        user = self.request.user
        if self.action in ("list", "retrieve"):
            tasks = Task.objects.select_related("lead")
            if user_role(user) in ADMIN_MARKETER:
                return tasks
            return tasks.filter(assignee_id=user.pk)
        return tasks_actionable_by(user)

    @extend_schema(request=None, responses={200: TaskSerializer})
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        """Mark the task done (done already: unchanged)."""
        task = task_services.task_complete(task=self.get_object(), user=_person(request))
        return Response(TaskSerializer(task).data)

    @extend_schema(request=SnoozeSerializer, responses={200: TaskSerializer, 409: ALREADY_DONE})
    @action(detail=True, methods=["post"])
    def snooze(self, request: Request, pk: str | None = None) -> Response:
        """Move an open task's due time to ``until``, or by a ``preset``."""
        task = self.get_object()
        serializer = SnoozeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        until = serializer.validated_data.get("until") or snooze_until(
            serializer.validated_data["preset"], timezone.now()
        )
        assert until is not None
        try:
            task_services.task_snooze(task=task, until=until, user=_person(request))
        except DjangoValidationError as exc:
            return _refused(exc, "until")
        return Response(TaskSerializer(task).data)

    @extend_schema(request=ReassignSerializer, responses={200: TaskSerializer, 409: ALREADY_DONE})
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str | None = None) -> Response:
        """Give an open task to an active sales rep or admin; they are notified."""
        task = self.get_object()
        serializer = ReassignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assignee = task_assignees().filter(pk=serializer.validated_data["assignee"]).first()
        if assignee is None:
            raise ValidationError({"assignee": ["Choose an active sales rep or admin."]})
        try:
            task_services.task_reassign(task=task, assignee=assignee, user=_person(request))
        except DjangoValidationError as exc:
            return _refused(exc, "assignee")
        return Response(TaskSerializer(task).data)


class NotificationSerializer(serializers.ModelSerializer[Notification]):
    class Meta:
        model = Notification
        fields = ["id", "message", "lead", "created_at", "read_at"]
        read_only_fields = fields


class NotificationFilter(django_filters.FilterSet):
    unread = django_filters.BooleanFilter(field_name="read_at", lookup_expr="isnull")

    class Meta:
        model = Notification
        fields = ["unread"]


class PersonOnly(permissions.BasePermission):
    message = "Notifications belong to people; an API key has none."

    def has_permission(self, request: Request, view: Any) -> bool:
        return not isinstance(request.user, ApiKeyPrincipal)


class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Notification]):
    """The signed-in person's notifications, newest first (``?unread=true``)."""

    serializer_class = NotificationSerializer
    permission_classes = [RoleAccess, PersonOnly]
    read_roles = ALL_ROLES
    write_roles = ALL_ROLES
    filterset_class = NotificationFilter

    def get_queryset(self) -> QuerySet[Notification]:
        if getattr(self, "swagger_fake_view", False):  # the schema's generation
            return Notification.objects.none()
        # PersonOnly: a signed-in person, never a key.
        return Notification.objects.filter(user=cast(User, self.request.user))

    @extend_schema(request=None, responses={200: NotificationSerializer})
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str | None = None) -> Response:
        notification = self.get_object()
        task_services.notifications_mark_read(user=cast(User, request.user), ids=[notification.pk])
        notification.refresh_from_db(fields=["read_at"])
        return Response(NotificationSerializer(notification).data)

    @extend_schema(
        request=None,
        responses={200: inline_serializer("ReadAll", {"changed": serializers.IntegerField()})},
    )
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request: Request) -> Response:
        changed = task_services.notifications_mark_read(user=cast(User, request.user))
        return Response({"changed": changed})

import functools
from typing import Any

from django.http import HttpRequest

from core.roles import ADMIN_MARKETER, Role
from leads.models import Notification
from leads.roles import user_role


def roles(request: HttpRequest) -> dict[str, Any]:
    role = user_role(getattr(request, "user", None))
    return {
        "user_role": role,
        "user_role_label": Role(role).label if role else "",
        "can_manage_leads": role in ADMIN_MARKETER,
    }


def notifications(request: HttpRequest) -> dict[str, Any]:
    """``unread_notification_count`` for the bell: counted once, and only when a
    template shows it (htmx partials and API pages do not)."""
    user = getattr(request, "user", None)
    # An API key acts as a user without a row, so it has no notifications.
    user_id = getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None
    if user_id is None:
        return {}

    @functools.cache
    def unread_notification_count() -> int:
        return Notification.objects.filter(user_id=user_id, read_at__isnull=True).count()

    return {"unread_notification_count": unread_notification_count}

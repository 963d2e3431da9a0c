from typing import Any

from django.http import HttpRequest

from leads.roles import user_role


def roles(request: HttpRequest) -> dict[str, Any]:
    role = user_role(getattr(request, "user", None))
    return {"user_role": role, "can_manage_leads": role in ("admin", "marketer")}

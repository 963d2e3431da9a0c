"""The operators' endpoints: ``/healthz`` for load balancers and orchestrators,
``/metrics`` for Prometheus."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from core.roles import Role
from leads.roles import user_role
from leads.services.health import OPTIONAL_PARTS, health_report
from leads.services.metrics import metrics_text


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 "ok"; 200 "degraded" when no worker or beat was seen lately (503 if
    ``?require=worker,scheduler`` names it); 503 "error" when the database or
    the broker does not answer."""
    require = [part for part in request.GET.get("require", "").split(",") if part]
    unknown = sorted(set(require) - set(OPTIONAL_PARTS))
    if unknown:
        return JsonResponse(
            {"error": f"require takes {', '.join(OPTIONAL_PARTS)}; not {', '.join(unknown)}"},
            status=400,
        )
    status, report = health_report(require=require)
    return JsonResponse(report, status=status)


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for a scraper sending ``METRICS_TOKEN`` as a bearer
    token, or an admin signed in."""
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    by_token = bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    if not by_token and user_role(request.user) != Role.ADMIN:
        return HttpResponse(
            "Send METRICS_TOKEN as a bearer token, or sign in as an admin.\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)

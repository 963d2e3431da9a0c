"""The dashboard: the home page, across every app."""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import formats, timezone
from django.utils.translation import gettext

from core.http import HtmxHttpRequest
from core.roles import ALL_ROLES
from leads.decorators import role_required
from leads.services.events import events_backlog
from pages.selectors.dashboard import DailySeries, dashboard_for


def _daily_chart(daily: DailySeries) -> str:
    """Chart.js configuration for new leads and MQLs per day (see ``app.js``)."""
    config = {
        "type": "bar",
        "data": {
            "labels": [formats.date_format(day, "SHORT_DATE_FORMAT") for day in daily.days],
            "datasets": [
                {"label": gettext("New leads"), "data": daily.new_leads},
                {"label": gettext("MQLs"), "data": daily.mqls},
            ],
        },
        "options": {
            "responsive": True,
            "maintainAspectRatio": False,
            "plugins": {"legend": {"position": "bottom"}},
            "scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0}}},
        },
    }
    return json.dumps(config)


@role_required(*ALL_ROLES)
def home(request: HtmxHttpRequest) -> HttpResponse:
    """The dashboard: this week's numbers with their trend, the last 30 days by
    day, and what to act on (tasks, hot leads, busy flows, big score changes)."""
    dashboard = dashboard_for(user=request.user)
    return render(
        request,
        "leads/home.html",
        {
            "dashboard": dashboard,
            "counts": dashboard.leads,
            "daily_chart": _daily_chart(dashboard.daily),
            "chart_days": len(dashboard.daily.days),
            "backlog": events_backlog() if dashboard.team_wide else None,
            "now": timezone.now(),
        },
    )

"""The scoring review, for admins and marketers: the month's numbers, the
suggested points (accepting them makes a draft flow), the review log, and the
presets a new install starts from."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER, Role
from core.vocabulary import EngagementGrade, FitGrade
from flows.presets import PRESETS, PresetRefused, PresetSetup, preset_apply, scoring_set_up
from flows.scoring_review import suggestions_draft_create
from flows.templates_catalog import FLOW_TEMPLATES
from leads.decorators import role_required
from leads.roles import user_role
from pages.selectors.review import review_page, suggestions_cached
from scoring.models import DecayMode, HotRule
from scoring.report import month_choices

review_roles = role_required(*ADMIN_MARKETER)


def _month(value: str | None) -> str | None:
    return value if value in month_choices(count=24) else None


@require_GET
@review_roles
def scoring_review(request: HtmxHttpRequest) -> HttpResponse:
    """The month's review (``?month=YYYY-MM``, by default the last full month)."""
    page = review_page(month=_month(request.GET.get("month")))
    report = page.report
    engagement = [str(value) for value, _ in EngagementGrade.choices]
    matrix = [
        (str(fit), [report.by_rating.get(f"{fit}{e}", 0) for e in engagement])
        for fit, _ in FitGrade.choices
    ]
    baseline = page.suggestions.baseline
    return render(
        request,
        "scoring/review.html",
        {
            "page": page,
            "report": report,
            "bands": list(zip(report.band_labels, report.by_band, strict=True)),
            "engagement_grades": engagement,
            "matrix": matrix,
            "total_rows": [replace(report.funnel_total, label=gettext("All leads"))],
            "baseline_percent": round(baseline * 100, 1) if baseline is not None else "-",
            # Each month's key with its first day, which the page names in the
            # reader's language ("Dezember 2026").
            "months": [(key, dt.date.fromisoformat(f"{key}-01")) for key in month_choices()],
            "presets": PRESETS.values(),
        },
    )


@require_POST
@review_roles
def scoring_suggestions_accept(request: HtmxHttpRequest) -> HttpResponse:
    """Make a draft flow from the ticked suggestions (with the points as edited)
    and open it in the builder."""
    rows = {row.feature.key: row for row in suggestions_cached().rows}
    accepted = []
    for key in request.POST.getlist("accept"):
        if key not in rows:
            continue
        try:
            points = int(request.POST.get(f"points:{key}", rows[key].points))
        except ValueError:
            points = rows[key].points
        accepted.append((rows[key].feature, max(-1000, min(1000, points))))
    month = _month(request.POST.get("month")) or ""
    try:
        flow = suggestions_draft_create(accepted=accepted, user=request.user, month=month)
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("scoring-review")
    steps = sum(1 for node in flow.draft["nodes"] if node["type"] == "score.adjust")
    messages.success(
        request,
        ngettext(
            "Draft made from %(count)s suggestion: review and publish.",
            "Draft made from %(count)s suggestions: review and publish.",
            steps,
        )
        % {"count": steps},
    )
    return redirect("flow-builder", pk=flow.pk)


@require_http_methods(["GET", "POST"])
@review_roles
def scoring_preset(request: HtmxHttpRequest, key: str) -> HttpResponse:
    """Confirm, then apply a preset; overwriting a setup needs its own tick.
    Admins only may apply one (it changes thresholds); marketers see what it does."""
    setup = PRESETS.get(key)
    if setup is None:
        raise Http404
    set_up = scoring_set_up()
    can_apply = user_role(request.user) == Role.ADMIN
    if request.method == "POST" and can_apply:
        if not request.POST.get("confirm"):
            messages.error(request, gettext("Tick the box to confirm."))
        else:
            try:
                made = preset_apply(
                    preset=key, user=request.user, overwrite=bool(request.POST.get("overwrite"))
                )
            except PresetRefused as exc:
                messages.error(
                    request,
                    gettext(
                        "Not applied: %(reason)s Tick “Overwrite the current setup” to replace it."
                    )
                    % {"reason": exc},
                )
            else:
                messages.success(
                    request,
                    ngettext(
                        "Preset %(preset)s applied; %(count)s flow made and published.",
                        "Preset %(preset)s applied; %(count)s flows made and published.",
                        len(made),
                    )
                    % {"preset": setup.label, "count": len(made)},
                )
                return redirect("scoring-review")
    return render(
        request,
        "scoring/preset_confirm.html",
        {
            "setup": setup,
            "set_up": set_up,
            "can_apply": can_apply,
            "settings_rows": _preset_rows(setup),
            "templates": [str(FLOW_TEMPLATES[key].name) for key in setup.templates],
        },
    )


def _preset_rows(setup: PresetSetup) -> list[tuple[str, str]]:
    """What the preset sets, in words."""
    values = setup.settings
    rows = [
        (gettext("Warm from"), str(values["warm_threshold"])),
        (gettext("Hot from"), str(values["hot_threshold"])),
        (gettext("MQL from"), str(values["mql_threshold"])),
        (
            gettext("Hot means"),
            gettext("fit %(fit)s or better and engagement %(engagement)s or better")
            % {"fit": values["hot_min_fit"], "engagement": values["hot_min_engagement"]}
            if values["hot_rule"] == HotRule.AXES
            else gettext("the total score"),
        ),
        (gettext("Total capped at"), str(values["total_cap"])),
    ]
    for key, category in setup.categories.items():
        decay = {
            DecayMode.NONE: gettext("no decay"),
            DecayMode.EXPIRE: ngettext(
                "points expire after %(days)s day",
                "points expire after %(days)s days",
                category["decay_days"] or 0,
            )
            % {"days": category["decay_days"]},
            DecayMode.PERCENT: gettext("%(percent)s %% per %(days)s days without activity")
            % {"percent": category["decay_percent"], "days": category["decay_days"]},
        }[category["decay_mode"]]
        rows.append(
            (
                key,
                gettext("capped at %(cap)s, %(decay)s") % {"cap": category["cap"], "decay": decay},
            )
        )
    return rows

"""Starting setups a new install picks: B2B (who the lead is weighs more, points
fade slowly, sales hears of a lead once it is warm) and B2C (what the lead does
weighs more, points fade fast, sales hears only of hot leads). A preset sets
the thresholds, the hot rule, the caps and the decay, and makes and publishes
its scoring flows from templates; it never overwrites a setup unasked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext, gettext_lazy

from flows.lifecycle import flow_publish
from flows.models import Flow, FlowStatus
from flows.templates_catalog import FLOW_TEMPLATES, flow_create_from_template
from scoring.models import DecayMode, HotRule, Preset, ScoreCategory
from scoring.rules import ENGAGEMENT, FIT
from scoring.services import review_log_record, scoring_settings, scoring_settings_update


@dataclass(frozen=True)
class PresetSetup:
    key: str
    label: Any
    description: Any
    settings: dict[str, Any]
    # Per category key: cap and decay.
    categories: dict[str, dict[str, Any]]
    templates: tuple[str, ...]


NO_DECAY = {"decay_mode": DecayMode.NONE, "decay_days": None, "decay_percent": None}

PRESETS: dict[str, PresetSetup] = {
    Preset.B2B: PresetSetup(
        key=Preset.B2B,
        label=gettext_lazy("B2B"),
        description=gettext_lazy(
            "Fit weighs more: a lead is hot with fit B or better and engagement 2 or better. "
            "Engagement points expire after 180 days. Sales gets a task when a lead turns warm."
        ),
        settings={
            "warm_threshold": 20,
            "hot_threshold": 60,
            "mql_threshold": 40,
            "hot_rule": HotRule.AXES,
            "hot_min_fit": "B",
            "hot_min_engagement": "2",
            "fit_a": 40,
            "fit_b": 25,
            "fit_c": 10,
            "engagement_1": 60,
            "engagement_2": 30,
            "engagement_3": 10,
            "total_cap": 150,
            "preset": Preset.B2B,
        },
        categories={
            FIT: {
                "cap": 60,
                "decay_mode": DecayMode.NONE,
                "decay_days": None,
                "decay_percent": None,
            },
            ENGAGEMENT: {
                "cap": 100,
                "decay_mode": DecayMode.EXPIRE,
                "decay_days": 180,
                "decay_percent": None,
            },
        },
        templates=("b2b-fit", "email-engagement", "notify-sales-warm"),
    ),
    Preset.B2C: PresetSetup(
        key=Preset.B2C,
        label=gettext_lazy("B2C"),
        description=gettext_lazy(
            "Engagement weighs more: a lead is hot from 70 points. Engagement loses a quarter "
            "of its points for every 30 days without activity. Sales gets a task only for "
            "hot leads."
        ),
        settings={
            "warm_threshold": 30,
            "hot_threshold": 70,
            "mql_threshold": 70,
            "hot_rule": HotRule.TOTAL,
            "fit_a": 30,
            "fit_b": 15,
            "fit_c": 5,
            "engagement_1": 50,
            "engagement_2": 25,
            "engagement_3": 10,
            "total_cap": 200,
            "preset": Preset.B2C,
        },
        categories={
            FIT: {
                "cap": 30,
                "decay_mode": DecayMode.NONE,
                "decay_days": None,
                "decay_percent": None,
            },
            ENGAGEMENT: {
                "cap": 150,
                "decay_mode": DecayMode.PERCENT,
                "decay_days": 30,
                "decay_percent": 25,
            },
        },
        templates=("b2c-engagement", "notify-sales-hot"),
    ),
}


class PresetRefused(ValueError):
    """The install is set up already and the preset was not asked to overwrite it."""


def scoring_set_up() -> str:
    """Why a preset would overwrite something ("" when nothing is set up): a
    preset picked before, or active flows that give points."""
    settings = scoring_settings()
    if settings.preset:
        return gettext("The %(preset)s preset was applied already.") % {
            "preset": Preset(settings.preset).label
        }
    scoring_flows = [
        flow.name
        for flow in Flow.objects.filter(status=FlowStatus.ACTIVE).select_related("published")
        if flow.published
        and any(node["type"] == "score.adjust" for node in flow.published.graph.get("nodes", []))
    ]
    if scoring_flows:
        return gettext("Active scoring flows exist: %(flows)s.") % {
            "flows": ", ".join(sorted(scoring_flows))
        }
    return ""


@transaction.atomic
def preset_apply(*, preset: str, user: User | None, overwrite: bool = False) -> list[Flow]:
    """Set the thresholds, hot rule, caps and decay of ``preset`` and make and
    publish its flows (a template whose flow exists by name is skipped). Refused
    (PresetRefused) when scoring is set up already, unless ``overwrite``.
    Returns the flows made."""
    setup = PRESETS[preset]
    reason = scoring_set_up()
    if reason and not overwrite:
        raise PresetRefused(reason)
    before = scoring_settings()
    changes: dict[str, Any] = {
        name: [getattr(before, name), value]
        for name, value in setup.settings.items()
        if getattr(before, name) != value
    }
    scoring_settings_update(**setup.settings)
    for key, values in setup.categories.items():
        category = ScoreCategory.objects.filter(key=key).first()
        if category is None:
            continue
        for name, value in values.items():
            if getattr(category, name) != value:
                changes[f"{key}.{name}"] = [getattr(category, name), value]
                setattr(category, name, value)
        category.save(update_fields=list(values))
    made = []
    for template_key in setup.templates:
        template = FLOW_TEMPLATES[template_key]
        if Flow.objects.filter(name=str(template.name)).exists():
            continue
        flow = flow_create_from_template(template=template, created_by=user)
        flow_publish(flow=flow, user=user)
        flow.refresh_from_db()
        made.append(flow)
    changes["flows"] = [flow.name for flow in made]
    review_log_record(
        user=user,
        subject="preset",
        summary=gettext("Preset %(preset)s applied") % {"preset": setup.label},
        changes=changes,
    )
    return made

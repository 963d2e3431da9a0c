"""Condition trees in words, one way everywhere: the segment page's summary, the
editor's labels and the flow builder's dry run ("yes: Job title contains “CEO” …")
all use these sentences and labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from core.vocabulary import EngagementGrade, FitGrade, Grade
from leads.models import ConsentState, LeadSource, Stage
from segments.conditions.schema import NO_VALUE, RELATIVE
from segments.conditions.tree import group_children
from segments.names import Names

FIELD_LABELS = {
    "email": _("Email"),
    "external_id": _("User id"),
    "first_name": _("First name"),
    "last_name": _("Last name"),
    "phone": _("Phone"),
    "job_title": _("Job title"),
    "company_name": _("Company"),
    "industry": _("Industry"),
    "country": _("Country"),
    "city": _("City"),
    "company_size": _("Company size"),
    "stage": _("Stage"),
    "unsubscribed": _("Unsubscribed"),
    "created_at": _("Created"),
    "updated_at": _("Updated"),
    "last_activity_at": _("Last activity"),
    "owner": _("Owner"),
    "tags": _("Tags"),
    "score": _("Score"),
    "grade": _("Grade"),
    "fit_grade": _("Fit grade"),
    "engagement_grade": _("Engagement grade"),
    "source": _("Source"),
    "consent_state": _("Marketing consent"),
}
OP_LABELS = {
    "is": _("is"),
    "is_not": _("is not"),
    "contains": _("contains"),
    "not_contains": _("does not contain"),
    "starts_with": _("starts with"),
    "ends_with": _("ends with"),
    "in": _("is one of"),
    "is_set": _("is set"),
    "is_not_set": _("is not set"),
    "eq": _("equals"),
    "ne": _("does not equal"),
    "gt": _("is more than"),
    "gte": _("is at least"),
    "lt": _("is less than"),
    "lte": _("is at most"),
    "between": _("is between"),
    "before": _("is before"),
    "after": _("is after"),
    "on": _("is on"),
    "in_last_days": _("is in the last … days"),
    "more_than_days_ago": _("is more than … days ago"),
    "in_next_days": _("is in the next … days"),
    "has": _("has the tag"),
    "has_not": _("does not have the tag"),
    "has_any": _("has any of the tags"),
    "has_all": _("has all of the tags"),
}
COUNT_LABELS = {"gte": _("at least"), "lte": _("at most"), "eq": _("exactly")}
ACTIVITY_LABELS = {
    "track": _("App event"),
    "page": _("Page view"),
    "screen": _("Screen view"),
    "form.submitted": _("Form submitted"),
    "email.delivered": _("Email delivered"),
    "email.opened": _("Email opened"),
    "email.clicked": _("Email link clicked"),
    "email.replied": _("Email replied to"),
    "email.bounced": _("Email bounced"),
    "email.complained": _("Email marked as spam"),
    "email.unsubscribed": _("Unsubscribed by email"),
}
GRADE_LABELS = dict(Grade.choices)
# The choices' labels of the choice fields that have them, by field.
CHOICE_LABELS = {
    "grade": GRADE_LABELS,
    "fit_grade": dict(FitGrade.choices),
    "engagement_grade": dict(EngagementGrade.choices),
    "source": dict(LeadSource.choices),
    "consent_state": dict(ConsentState.choices),
}


def as_text(value: Any) -> str:
    """A rule's value as the editor's inputs hold it ("" for none)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def condition_field_label(name: str, names: Names) -> str:
    """A rule's field as the segment editor labels it: "Job title", "Score: Fit",
    a custom field's label."""
    if name in FIELD_LABELS:
        return str(FIELD_LABELS[name])
    if name.startswith("score."):
        label = names.categories.get(name[6:], name[6:])
        return gettext("Score: %(category)s") % {"category": label}
    return names.field_label(name)


@dataclass
class SummaryItem:
    text: str = ""
    match: str = ""
    children: list[SummaryItem] = field(default_factory=list)


def describe_tree(tree: Any, names: Names) -> SummaryItem:
    """The conditions as nested sentences: "All of: Job title contains “CEO” …"."""
    if not isinstance(tree, dict):
        return SummaryItem(text=gettext("No conditions."))
    kids = group_children(tree)
    if kids is not None:
        match = gettext("Any of:") if "any" in tree else gettext("All of:")
        if not kids:
            match = gettext("Every lead.") if "all" in tree else gettext("No lead.")
        return SummaryItem(match=match, children=[describe_tree(k, names) for k in kids])
    return SummaryItem(text=rule_words(tree, names))


def rule_words(rule: dict[str, Any], names: Names, *, subject: str | None = None) -> str:
    """One rule in words: "Job title contains “CEO”", "In the segment “Trial”",
    "Page view at least 2 times in the last 30 days". ``subject`` names the field
    instead of its label (the dry run's mid-sentence form)."""
    if "activity" in rule:
        return activity_words(rule)
    if "segment" in rule:
        segment_id = rule.get("segment")
        segment = names.segments.get(segment_id, f"#{segment_id}") if segment_id else "?"
        template = (
            gettext("Not in the segment “%(name)s”")
            if rule.get("op") == "not_in"
            else gettext("In the segment “%(name)s”")
        )
        return template % {"name": segment}
    return _field_words(rule, names, subject)


def value_words(name: str, value: Any, names: Names) -> str:
    """A rule's value in words: quoted text, users' and stages' names, 'a and b'."""
    values = value if isinstance(value, list) else [value]
    shown = []
    for item in values:
        if name == "owner" and isinstance(item, int):
            shown.append(names.users.get(item, f"#{item}"))
        elif isinstance(item, bool):
            shown.append(gettext("yes") if item else gettext("no"))
        elif item in CHOICE_LABELS.get(name, {}):
            shown.append(str(CHOICE_LABELS[name][item]))
        elif name == "stage" and item in Stage.values:
            shown.append(str(Stage(item).label))
        else:
            shown.append(f"“{item}”" if isinstance(item, str) else str(item))
    return gettext(" and ").join(shown) if len(values) == 2 else ", ".join(shown)


def _field_words(rule: dict[str, Any], names: Names, subject: str | None) -> str:
    name = as_text(rule.get("field"))
    op = as_text(rule.get("op"))
    label = subject if subject is not None else condition_field_label(name, names)
    if op in RELATIVE:
        days = rule.get("value")
        template = {
            "in_last_days": gettext("%(field)s is in the last %(days)s days"),
            "more_than_days_ago": gettext("%(field)s is more than %(days)s days ago"),
            "in_next_days": gettext("%(field)s is in the next %(days)s days"),
        }[op]
        return template % {"field": label, "days": days}
    op_label = str(OP_LABELS.get(op, op))
    if op in NO_VALUE:
        return gettext("%(field)s %(op)s") % {"field": label, "op": op_label}
    if name == "tags":
        # "Has the tag “vip”": the operator already says what it is about.
        text = gettext("%(op)s %(value)s") % {
            "op": op_label,
            "value": value_words(name, rule.get("value"), names),
        }
        return text if subject is not None else text[:1].upper() + text[1:]
    return gettext("%(field)s %(op)s %(value)s") % {
        "field": label,
        "op": op_label,
        "value": value_words(name, rule.get("value"), names),
    }


def activity_words(rule: dict[str, Any]) -> str:
    """An activity rule in words: what, how often, when, where."""
    activity = str(ACTIVITY_LABELS.get(rule.get("activity", ""), rule.get("activity")))
    if rule.get("name"):
        activity = f"{activity} “{rule['name']}”"
    count = rule.get("count") or {"op": "gte", "value": 1}
    times = count.get("value", 1)
    if count.get("op") == "eq" and times == 0:
        parts = [gettext("No %(activity)s") % {"activity": activity}]
    else:
        parts = [
            ngettext(
                "%(activity)s %(op)s %(count)s time",
                "%(activity)s %(op)s %(count)s times",
                times if isinstance(times, int) else 2,
            )
            % {
                "activity": activity,
                "op": COUNT_LABELS.get(str(count.get("op")), count.get("op")),
                "count": times,
            }
        ]
    if "within_days" in rule:
        days = rule["within_days"]
        parts.append(
            ngettext("in the last %(days)s day", "in the last %(days)s days", days) % {"days": days}
        )
    elif isinstance(rule.get("between"), list) and len(rule["between"]) == 2:
        parts.append(
            gettext("between %(first)s and %(last)s")
            % {"first": rule["between"][0], "last": rule["between"][1]}
        )
    else:
        parts.append(gettext("ever"))
    for prop, test in (rule.get("where") or {}).items():
        if isinstance(test, dict):
            parts.append(
                gettext("where %(property)s %(op)s “%(value)s”")
                % {
                    "property": prop,
                    "op": OP_LABELS.get(str(test.get("op")), test.get("op")),
                    "value": test.get("value"),
                }
            )
    return ", ".join(parts)

"""The leads list's forms: its filters and sorts, and the bulk changes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.vocabulary import EngagementGrade, FitGrade, Grade
from leads.models import Segment, SegmentKind, Stage
from leads.selectors import (
    lead_owner_choices,
)

# Hottest first.
GRADES = list(reversed(Grade.choices))
# Quick filters: a saved question with its own sort.
GREAT_FIT = "great_fit"
VIEWS = [(GREAT_FIT, _("Great fit, not yet engaged"))]


# Each way round, so that a phone (where the table has no headers) sorts both ways.
SORTS = [
    ("created", _("Newest")),
    ("created:asc", _("Oldest")),
    ("score", _("Score")),
    ("score:asc", _("Score, lowest first")),
    ("activity", _("Last activity")),
    ("activity:asc", _("Least recent activity")),
    ("fit", _("Fit points")),
    ("fit:asc", _("Fit points, lowest first")),
    ("engagement", _("Engagement points")),
    ("engagement:asc", _("Engagement points, lowest first")),
]


class LeadFilterForm(forms.Form):
    """The list's GET parameters. A value that does not validate is ignored, as if
    it were blank: a stale or hand-edited link still shows a list."""

    q = forms.CharField(required=False, max_length=200)
    segment = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    grade = forms.ChoiceField(required=False, choices=[("", ""), *GRADES])
    fit_grade = forms.ChoiceField(required=False, choices=[("", ""), *FitGrade.choices])
    engagement_grade = forms.ChoiceField(
        required=False, choices=[("", ""), *EngagementGrade.choices]
    )
    view = forms.ChoiceField(required=False, choices=[("", ""), *VIEWS])
    stage = forms.ChoiceField(required=False, choices=[("", ""), *Stage.choices])
    owner = forms.RegexField(required=False, regex=r"^(none|\d{1,18})$")
    tag = forms.CharField(required=False, max_length=100)
    score_min = forms.IntegerField(required=False, min_value=-(2**31), max_value=2**31 - 1)
    score_max = forms.IntegerField(required=False, min_value=-(2**31), max_value=2**31 - 1)
    # A sort key, or ``<key>:asc`` for the other way round (see ``sort_parse``).
    sort = forms.CharField(required=False, max_length=20)

    def values(self) -> dict[str, Any]:
        self.is_valid()
        return {name: self.cleaned_data.get(name) for name in FILTER_PARAMS}


BULK_ACTIONS = [
    ("owner", _("Assign owner")),
    ("tag_add", _("Add tag")),
    ("tag_remove", _("Remove tag")),
    ("segment", _("Add to static segment")),
    ("stage", _("Change stage")),
]


class LeadBulkForm(forms.Form):
    action = forms.ChoiceField(choices=BULK_ACTIONS)
    lead = forms.TypedMultipleChoiceField(required=False, coerce=int, choices=())
    all_matching = forms.BooleanField(required=False)
    confirmed = forms.BooleanField(required=False)
    # A user id, or "none" to unassign.
    owner = forms.RegexField(required=False, regex=r"^(none|\d{1,18})$")
    tag = forms.CharField(required=False, max_length=100)
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.filter(kind=SegmentKind.STATIC), required=False
    )
    stage = forms.ChoiceField(required=False, choices=[("", ""), *Stage.choices])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "bulk")
        super().__init__(*args, **kwargs)
        # Any id is accepted here; which leads it may touch is decided by scope.
        ids = self.data.getlist(self.add_prefix("lead")) if hasattr(self.data, "getlist") else []
        lead_field = self.fields["lead"]
        assert isinstance(lead_field, forms.TypedMultipleChoiceField)
        lead_field.choices = [(i, i) for i in ids if i.isdigit() and len(i) < 19]
        self.new_owner: User | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        action = data.get("action")
        if not data.get("all_matching") and not data.get("lead"):
            raise forms.ValidationError(gettext("Select leads first."))
        if action == "owner":
            owner = data.get("owner") or ""
            self.new_owner = (
                lead_owner_choices().filter(pk=int(owner)).first() if owner.isdigit() else None
            )
            if owner != "none" and self.new_owner is None:
                self.add_error("owner", gettext("Choose an owner."))
        if action in ("tag_add", "tag_remove") and not (data.get("tag") or "").strip():
            self.add_error("tag", gettext("Enter a tag."))
        if action == "segment" and data.get("segment") is None:
            self.add_error("segment", gettext("Choose a static segment."))
        if action == "stage" and not data.get("stage"):
            self.add_error("stage", gettext("Choose a stage."))
        return data


FILTER_PARAMS = (
    "q",
    "segment",
    "grade",
    "fit_grade",
    "engagement_grade",
    "view",
    "stage",
    "owner",
    "tag",
    "score_min",
    "score_max",
    "sort",
)

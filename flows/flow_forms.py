"""The flow settings dialog's form: name, description and re-entry rule."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext, gettext_lazy

from flows.lifecycle import NAME_MAX, flow_name_taken
from flows.models import Flow, Reentry

REENTRY_WORDS = {
    Reentry.ONCE: gettext_lazy("Once per lead, ever"),
    Reentry.ALWAYS: gettext_lazy("Every time a trigger fires"),
    Reentry.DAYS: gettext_lazy("At most once per lead in a number of days"),
}


class FlowSettingsForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=NAME_MAX)
    description = forms.CharField(
        label=gettext_lazy("Description"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("What the flow is for, shown in the list of flows."),
    )
    reentry = forms.ChoiceField(
        label=gettext_lazy("A lead may go through this flow"),
        choices=list(REENTRY_WORDS.items()),
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
    )
    reentry_days = forms.IntegerField(
        label=gettext_lazy("Days"),
        required=False,
        min_value=1,
        max_value=3650,
        help_text=gettext_lazy("For “at most once in a number of days”."),
    )

    def __init__(self, *args: Any, flow: Flow, **kwargs: Any):
        kwargs.setdefault(
            "initial",
            {
                "name": flow.name,
                "description": flow.description,
                "reentry": flow.reentry,
                "reentry_days": flow.reentry_days,
            },
        )
        super().__init__(*args, **kwargs)
        self.flow = flow

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if flow_name_taken(name=name, exclude=self.flow.pk):
            raise forms.ValidationError(
                gettext("A flow named “%(name)s” exists already. Choose another name.")
                % {"name": name}
            )
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("reentry") == Reentry.DAYS and not data.get("reentry_days"):
            self.add_error("reentry_days", gettext("Give the number of days."))
        return data

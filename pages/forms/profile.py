"""The lead profile's forms: owner and stage, a manual score change, a note."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext

from leads.models import Stage
from leads.selectors import lead_owner_choices
from leads.services.notes import NOTE_MAX_LENGTH
from scoring.models import ScoreCategory


class LeadOwnerStageForm(forms.Form):
    owner = forms.ModelChoiceField(queryset=lead_owner_choices(), required=False)
    stage = forms.ChoiceField(choices=Stage.choices)


class ScoreAdjustForm(forms.Form):
    delta = forms.IntegerField(min_value=-10_000, max_value=10_000)
    category = forms.ModelChoiceField(
        queryset=ScoreCategory.objects.all(), to_field_name="key", empty_label=None
    )
    reason = forms.CharField(max_length=255)

    def clean_delta(self) -> int:
        delta: int = self.cleaned_data["delta"]
        if delta == 0:
            raise ValidationError(gettext("A change of 0 points changes nothing."))
        return delta


class NoteForm(forms.Form):
    body = forms.CharField(max_length=NOTE_MAX_LENGTH, strip=True)

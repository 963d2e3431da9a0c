"""The profile's consent form: a user sets a lead's marketing consent, with why."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy

from leads.models import ConsentState


class LeadConsentForm(forms.Form):
    state = forms.ChoiceField(choices=ConsentState.choices, label=gettext_lazy("Consent"))
    reason = forms.CharField(
        max_length=200,
        label=gettext_lazy("Why (kept with the change)"),
        help_text=gettext_lazy("For example: asked for it by phone on 3 March."),
    )

"""Erasing a lead: the confirmation a person types."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext, gettext_lazy

from leads.models import Lead


def erase_phrase(lead: Lead) -> str:
    return lead.email or str(lead.pk)


class EraseForm(forms.Form):
    confirm = forms.CharField(label=gettext_lazy("Type to confirm"), max_length=254)

    def __init__(self, *args: object, lead: Lead, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lead = lead

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"].strip()
        if value.lower() != erase_phrase(self.lead).lower():
            raise forms.ValidationError(
                gettext("That does not match. Nothing was erased."), code="mismatch"
            )
        return value

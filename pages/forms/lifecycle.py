"""The lifecycle panel's forms: open an opportunity, lose one, the lead's source.
Values are checked once more by the services (``opportunity_terms_clean``)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy

from leads.locales import time_zone_of
from leads.models import LeadSource
from leads.services.outcomes import DEFAULT_CURRENCY, MAX_VALUE


class OpportunityOpenForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, label=gettext_lazy("Name"))
    value = forms.DecimalField(
        min_value=Decimal(0),
        max_value=MAX_VALUE,
        decimal_places=2,
        localize=True,
        label=gettext_lazy("Value"),
    )
    currency = forms.CharField(
        max_length=3, min_length=3, initial=DEFAULT_CURRENCY, label=gettext_lazy("Currency")
    )


class OpportunityLoseForm(forms.Form):
    reason = forms.CharField(max_length=255, label=gettext_lazy("Why was it lost?"))


class LeadSourceForm(forms.Form):
    source = forms.ChoiceField(
        choices=[("", "—"), *LeadSource.choices], required=False, label=gettext_lazy("Source")
    )
    source_detail = forms.CharField(max_length=200, required=False, label=gettext_lazy("Detail"))


class LeadLocaleForm(forms.Form):
    """The language emails and pages for the lead use, and its time zone."""

    language = forms.ChoiceField(
        choices=[("", gettext_lazy("The site's default")), *settings.LANGUAGES],
        required=False,
        label=gettext_lazy("Language"),
    )
    time_zone = forms.CharField(max_length=64, required=False, label=gettext_lazy("Time zone"))

    def clean_time_zone(self) -> str:
        value = str(self.cleaned_data["time_zone"]).strip()
        if not value:
            return ""
        zone = time_zone_of(value)
        if zone is None:
            raise forms.ValidationError(
                gettext_lazy('This is not a time zone. Use a name like "Europe/Berlin".')
            )
        return zone

"""Signing in and a user's own account."""

from __future__ import annotations

import math

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext

from leads.services.throttle import client_address, login_lockout_seconds

# Django's own validation messages that the REST framework's German catalog (which
# takes precedence over Django's) words informally; ours, read first, says "Sie".
DJANGO_MESSAGES = (gettext_noop("Enter a valid email address."),)


def wait_message(seconds: int) -> str:
    """Too many tries: how long to wait, in whole minutes."""
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many attempts. Please wait %(minutes)s minute before you try again.",
        "Too many attempts. Please wait %(minutes)s minutes before you try again.",
        minutes,
    ) % {"minutes": minutes}


class LoginForm(AuthenticationForm):
    """Django's sign-in form that says so when the account or the address is locked
    after too many failed attempts (the backend refuses them meanwhile)."""

    locked_message = ""

    def get_invalid_login_error(self) -> ValidationError:
        seconds = login_lockout_seconds(
            username=self.cleaned_data.get("username") or "",
            address=client_address(self.request),
        )
        if seconds:
            self.locked_message = wait_message(seconds)
            return ValidationError(self.locked_message, code="locked")
        return super().get_invalid_login_error()


class LanguageForm(forms.Form):
    language = forms.ChoiceField(
        label=_("Language"),
        choices=[("", _("The browser's language")), *settings.LANGUAGES],
        required=False,
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
    )

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext

from leads.services.imports import IMPORT_MAX_BYTES, import_read_headers, import_target_choices
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


class LeadImportUploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"), help_text=_("A CSV file with a header row; one lead per row.")
    )
    headers: list[str]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".txt")):
            raise forms.ValidationError(_("Upload a .csv file."))
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than the import limit."))
        try:
            self.headers = import_read_headers(upload.file)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        upload.file.seek(0)
        if not any(self.headers):
            raise forms.ValidationError(_("The file has no header row."))
        return upload


class LeadImportMappingForm(forms.Form):
    """One select per CSV column: which lead field it fills, or skip it."""

    def __init__(
        self, *args: Any, headers: list[str], initial_mapping: dict[str, str], **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.headers = headers
        choices = [("", _("— skip —")), *import_target_choices()]
        for index, header in enumerate(headers):
            self.fields[f"col_{index}"] = forms.ChoiceField(
                label=header or _("Column %(number)d") % {"number": index + 1},
                choices=choices,
                required=False,
                initial=initial_mapping.get(header, ""),
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        mapping = {}
        used: dict[str, str] = {}
        for index, header in enumerate(self.headers):
            target = cleaned.get(f"col_{index}")
            if not target:
                continue
            if target in used and target != "tags":
                self.add_error(
                    f"col_{index}",
                    _("Already mapped from column %(column)s.") % {"column": repr(used[target])},
                )
            used[target] = header
            mapping[header] = target
        if "email" not in mapping.values():
            raise forms.ValidationError(_("Map one column to email: leads are matched by email."))
        cleaned["mapping"] = mapping
        return cleaned


class LanguageForm(forms.Form):
    language = forms.ChoiceField(
        label=_("Language"),
        choices=[("", _("The browser's language")), *settings.LANGUAGES],
        required=False,
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
    )

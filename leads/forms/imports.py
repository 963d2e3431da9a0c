"""CSV import: the file, then which column goes where."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from leads.services.imports import IMPORT_MAX_BYTES, import_read_headers, import_target_choices


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

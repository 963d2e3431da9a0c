"""The email pages' forms: a template, a sender, the email settings."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from emails.models import EmailKind, EmailSettings, EmailTemplate, FrequencyPeriod, Sender
from emails.services import template_problems


class _StyledForm(forms.Form):
    """Bootstrap classes on every widget."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                continue
            css = "form-select" if isinstance(widget, forms.Select) else "form-control"
            widget.attrs.setdefault("class", css)


class BlocksField(forms.CharField):
    """The body's blocks, as the editor writes them: JSON in a text area."""

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return []
        try:
            return json.loads(text)
        except ValueError:
            raise forms.ValidationError(
                _("The blocks could not be read; reload the page and try again."), code="invalid"
            ) from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return json.dumps(value, ensure_ascii=False)
        return value


class TemplateForm(_StyledForm):
    name = forms.CharField(label=_("Name"), max_length=200)
    subject = forms.CharField(
        label=_("Subject"),
        max_length=300,
        help_text=_('Merge tags fill in the lead\'s data: {{ first_name | default: "there" }}.'),
    )
    preheader = forms.CharField(
        label=_("Preheader"),
        max_length=300,
        required=False,
        help_text=_("The line inboxes show after the subject."),
    )
    sender = forms.ModelChoiceField(
        label=_("From"), queryset=Sender.objects.all(), required=False, empty_label=_("(default)")
    )
    kind = forms.ChoiceField(
        label=_("Kind"),
        choices=EmailKind.choices,
        help_text=_(
            "Marketing email goes only to leads who agreed to it and carries the "
            "unsubscribe link; transactional email (a confirmation) does not."
        ),
    )
    blocks = BlocksField(label=_("Body"), required=False, widget=forms.Textarea(attrs={"rows": 8}))

    def __init__(self, *args: Any, template: EmailTemplate | None = None, **kwargs: Any):
        self.template = template
        if template is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": template.name,
                "subject": template.subject,
                "preheader": template.preheader,
                "sender": template.sender_id,
                "kind": template.kind,
                "blocks": template.blocks,
            }
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        problems = template_problems(
            name=cleaned["name"],
            subject=cleaned["subject"],
            preheader=cleaned.get("preheader", ""),
            blocks=cleaned.get("blocks", []),
            template=self.template,
        )
        for field_name, messages in problems.items():
            for message in messages:
                self.add_error(field_name, message)
        return cleaned

    def unsaved(self) -> EmailTemplate:
        """The template as written in the form, not saved (for a preview)."""
        data = self.cleaned_data
        return EmailTemplate(
            pk=None,
            name=data.get("name", ""),
            subject=data.get("subject", ""),
            preheader=data.get("preheader", ""),
            sender=data.get("sender"),
            kind=data.get("kind", EmailKind.MARKETING),
            blocks=data.get("blocks", []),
        )


class SenderForm(_StyledForm):
    name = forms.CharField(label=_("Name"), max_length=120, help_text=_("e.g. Anna from Acme"))
    address = forms.EmailField(label=_("Address"), max_length=254)
    reply_to = forms.EmailField(label=_("Reply-to"), max_length=254, required=False)

    def clean_address(self) -> str:
        address = str(self.cleaned_data["address"]).strip().lower()
        if Sender.objects.filter(address=address).exists():
            raise forms.ValidationError(_("This address is already a sender."), code="unique")
        return address


class EmailSettingsForm(_StyledForm):
    postal_address = forms.CharField(
        label=_("Postal address"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Every marketing email's footer shows it; required before the first send."),
    )
    sends_per_minute = forms.IntegerField(
        label=_("Sending rate (emails per minute)"), min_value=1, max_value=100_000
    )
    frequency_cap = forms.IntegerField(
        label=_("At most this many marketing emails per lead"),
        min_value=0,
        max_value=1000,
        help_text=_("0: no limit. What is over the limit waits; it is not dropped."),
    )
    frequency_period = forms.ChoiceField(label=_("Per"), choices=FrequencyPeriod.choices)
    send_window_start = forms.TimeField(
        label=_("Send from"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("In the lead's time zone. Leave both empty to send at any time."),
    )
    send_window_end = forms.TimeField(
        label=_("Send until"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    require_double_opt_in = forms.BooleanField(
        label=_(
            "Require double opt-in: only leads who confirmed their address get marketing email"
        ),
        required=False,
    )

    @classmethod
    def for_settings(cls, current: EmailSettings, data: Any = None) -> EmailSettingsForm:
        initial = {
            name: getattr(current, name)
            for name in (
                "postal_address",
                "sends_per_minute",
                "frequency_cap",
                "frequency_period",
                "send_window_start",
                "send_window_end",
                "require_double_opt_in",
            )
        }
        return cls(data, initial=initial)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("send_window_start"), cleaned.get("send_window_end")
        if (start is None) != (end is None):
            self.add_error(
                "send_window_end",
                _("Give both the start and the end of the send window, or neither."),
            )
        elif start is not None and start == end:
            self.add_error("send_window_end", _("The send window cannot start and end at once."))
        return cleaned

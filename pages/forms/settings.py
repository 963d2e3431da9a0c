"""The settings pages' forms: users, API keys, fields, scoring, integrations, webhooks."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

from django import forms
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _

from core.roles import Role
from core.vocabulary import EngagementGrade, FitGrade
from flows.hooks import HOOK_EVENTS
from flows.outbound import outbound_url_problem
from leads.models import ApiScope, FieldDefinition, FieldType
from leads.services.fields import RESERVED_KEYS, FieldValueError, choice_options_clean
from scoring.models import DecayMode, HotRule, ScoreCategory
from scoring.rules import category_problems, settings_problems
from scoring.selectors import axis_caps
from scoring.services import scoring_settings


class _StyledForm(forms.Form):
    """Bootstrap classes on every widget."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.RadioSelect):
                widget.attrs.setdefault("class", "form-check-input")
                continue
            if isinstance(widget, forms.CheckboxInput):
                continue
            css = "form-select" if isinstance(widget, forms.Select) else "form-control"
            widget.attrs.setdefault("class", css)


class InviteForm(_StyledForm):
    DELIVERY_PASSWORD = "password"  # noqa: S105 - a choice value, not a password
    DELIVERY_LINK = "link"

    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    username = forms.CharField(label=_("Username"), max_length=150)
    email = forms.EmailField(label=_("Email"))
    # The least powerful role unless the admin chooses otherwise.
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.SALES)
    delivery = forms.ChoiceField(
        label=_("How they get in"),
        choices=[
            (DELIVERY_PASSWORD, _("Show a one-time password to hand over")),
            (DELIVERY_LINK, _("Email a link to set their password")),
        ],
        widget=forms.RadioSelect,
        initial=DELIVERY_PASSWORD,
    )

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"].strip()
        if not re.fullmatch(r"[\w.@+-]+", username):
            raise forms.ValidationError(
                _("Use letters, digits and @ . + - _ only."), code="invalid"
            )
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("This username is taken."), code="unique")
        return username


class UserNameForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)


class ApiKeyForm(_StyledForm):
    name = forms.CharField(label=_("Name"), max_length=120)
    scope = forms.ChoiceField(
        label=_("Scope"),
        choices=[
            (ApiScope.INGEST, _("Ingest: events and identify only (safe in a website)")),
            (ApiScope.FULL, _("Full: the whole API with admin rights")),
        ],
        initial=ApiScope.INGEST,
    )


FIELD_KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")


class _FieldOptionsMixin(_StyledForm):
    options_text = forms.CharField(
        label=_("Options"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Choice fields only: one option per line."),
    )

    def _clean_options(self, field_type: str) -> list[str]:
        text = self.cleaned_data.get("options_text", "")
        options = [line.strip() for line in text.splitlines() if line.strip()]
        try:
            return choice_options_clean(field_type, options)
        except FieldValueError:
            if field_type == FieldType.CHOICE:
                message = _("A choice field needs options, one per line, each once.")
            else:
                message = _("Only choice fields have options.")
            self.add_error("options_text", message)
            return []


def field_key_from_label(label: str) -> str:
    """A custom field's key made from its label, as the form proposes it while
    the label is typed (``app.js`` does the same): "Annual revenue (€)" →
    ``annual_revenue``. Accents lose their marks; a key must start with a letter."""
    text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode().lower()
    key = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if key and not key[0].isalpha():
        key = f"field_{key}"
    return key[:64].rstrip("_")


class FieldCreateForm(_FieldOptionsMixin):
    label = forms.CharField(label=_("Label"), max_length=120)
    key = forms.CharField(
        label=_("Key"),
        max_length=64,
        required=False,
        help_text=_(
            "Made from the label; you can change it before saving. Lower-case letters, "
            "digits and underscores; cannot change later."
        ),
        widget=forms.TextInput(attrs={"data-key-from": "id_label"}),
    )
    type = forms.ChoiceField(label=_("Type"), choices=FieldType.choices)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        key = (data.get("key") or "").strip() or field_key_from_label(data.get("label", ""))
        if "label" in data or key:
            problem = self._key_problem(key)
            if problem:
                self.add_error("key", problem)
            else:
                data["key"] = key
        if "type" in data:
            data["options"] = self._clean_options(data["type"])
        return data

    @staticmethod
    def _key_problem(key: str) -> forms.ValidationError | None:
        if not FIELD_KEY_PATTERN.fullmatch(key):
            return forms.ValidationError(
                _("Start with a letter; use lower-case letters, digits and underscores."),
                code="invalid",
            )
        if key in RESERVED_KEYS:
            return forms.ValidationError(_("This is a standard lead field."), code="reserved")
        if FieldDefinition.objects.filter(key=key).exists():
            return forms.ValidationError(_("A field with this key exists."), code="unique")
        return None


class FieldEditForm(_FieldOptionsMixin):
    """Label and options; the key and the type stay, since stored values and
    conditions depend on them."""

    label = forms.CharField(label=_("Label"), max_length=120)

    def __init__(self, *args: Any, definition: FieldDefinition, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.definition = definition

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["options"] = self._clean_options(self.definition.type)
        return data


def _problems_to_errors(form: forms.Form, problems: dict[str, list[str]]) -> None:
    for field, messages in problems.items():
        for message in messages:
            form.add_error(field if field in form.fields else None, message)


def _optional_whole(label: StrOrPromise, help_text: StrOrPromise = "") -> forms.IntegerField:
    return forms.IntegerField(
        label=label, required=False, min_value=0, max_value=2**31 - 1, help_text=help_text
    )


class ThresholdsForm(_StyledForm):
    """The scoring settings: grades (warm, hot and the hot rule), the two axes'
    thresholds, the total's cap and the MQL rule. The rules on them are
    scoring's (``settings_problems``), which the API asks too."""

    warm_threshold = forms.IntegerField(label=_("Warm from"))
    hot_threshold = forms.IntegerField(
        label=_("Hot from"), help_text=_("The total score a lead is hot from (the total rule).")
    )
    hot_rule = forms.ChoiceField(
        label=_("A lead is hot when"), choices=HotRule.choices, widget=forms.RadioSelect
    )
    hot_min_fit = forms.ChoiceField(
        label=_("Hot needs a fit grade of at least"),
        choices=FitGrade.choices,
        help_text=_("With the two-axes rule."),
    )
    hot_min_engagement = forms.ChoiceField(
        label=_("and an engagement grade of at least"),
        choices=EngagementGrade.choices,
        help_text=_("With the two-axes rule."),
    )
    fit_a = forms.IntegerField(label=_("Fit A from (points)"))
    fit_b = forms.IntegerField(label=_("Fit B from (points)"))
    fit_c = forms.IntegerField(label=_("Fit C from (points)"), help_text=_("Below this, fit D."))
    engagement_1 = forms.IntegerField(label=_("Engagement 1 from (points)"))
    engagement_2 = forms.IntegerField(label=_("Engagement 2 from (points)"))
    engagement_3 = forms.IntegerField(
        label=_("Engagement 3 from (points)"), help_text=_("Below this, engagement 4.")
    )
    total_cap = _optional_whole(
        _("Cap on the total score"),
        _("Points past it are written down but not counted. Blank for no cap."),
    )
    mql_threshold = forms.IntegerField(label=_("MQL threshold"))
    mql_moves_stage = forms.BooleanField(
        label=_("Reaching the MQL threshold moves a subscriber or lead to MQL"), required=False
    )
    sales_can_adjust = forms.BooleanField(
        label=_("Sales reps may adjust scores by hand"), required=False
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        _problems_to_errors(self, settings_problems(data, axis_caps()))
        return data


class CategorySettingsForm(_StyledForm):
    """A category's cap and decay; the rules are scoring's (``category_problems``)."""

    cap = _optional_whole(
        _("Cap"), _("Points past it are written down but not counted. Blank for no cap.")
    )
    decay_mode = forms.ChoiceField(label=_("Decay"), choices=DecayMode.choices)
    decay_days = _optional_whole(
        _("Days"),
        _("Expire: points go this many days after they were earned. Share: the period."),
    )
    decay_percent = _optional_whole(
        _("Percent"), _("Share: the part of the points lost per period without activity.")
    )

    def __init__(self, *args: Any, category_key: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.category_key = category_key

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        _problems_to_errors(
            self, category_problems(data, key=self.category_key, settings=scoring_settings())
        )
        if data.get("decay_mode") != DecayMode.PERCENT:
            data["decay_percent"] = None
        if data.get("decay_mode") == DecayMode.NONE:
            data["decay_days"] = None
        return data


if TYPE_CHECKING:
    _CategoryModelForm = forms.ModelForm[ScoreCategory]
else:
    # ModelForm is generic in the type stubs only: at run time it takes no subscript.
    _CategoryModelForm = forms.ModelForm


class CategoryForm(_CategoryModelForm):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-control")

    class Meta:
        model = ScoreCategory
        fields = ["key", "label"]
        labels = {"key": _("Key"), "label": _("Label")}

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"]
        if not FIELD_KEY_PATTERN.fullmatch(key):
            raise forms.ValidationError(
                _("Start with a letter; use lower-case letters, digits and underscores."),
                code="invalid",
            )
        return key


# Django's own message would be DRF's German, which says "du"; the pages say "Sie".
URL_ERRORS = {"invalid": _("Enter a valid URL.")}


class SlackForm(_StyledForm):
    """The team's Slack URL is a credential (whoever has it posts to the channel):
    written, never shown again. Left blank it stays; "Remove" clears it."""

    slack_webhook_url = forms.URLField(
        label=_("Slack incoming-webhook URL"),
        max_length=500,
        required=False,
        assume_scheme="https",
        error_messages=URL_ERRORS,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    remove = forms.BooleanField(label=_("Remove the saved URL"), required=False)

    def __init__(self, *args: Any, saved: bool, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.saved = saved
        field = self.fields["slack_webhook_url"]
        if saved:
            field.help_text = _("Set. It is never shown again; leave this blank to keep it.")
        else:
            field.help_text = _("Not set.")
            del self.fields["remove"]

    def clean_slack_webhook_url(self) -> str:
        url: str = self.cleaned_data["slack_webhook_url"]
        if url and not url.startswith("https://"):
            raise forms.ValidationError(_("Use an https:// URL."), code="invalid")
        problem = outbound_url_problem(url) if url else None
        if problem:
            raise forms.ValidationError(problem, code="not_allowed")
        return url

    def new_url(self, current: str) -> str:
        if self.cleaned_data.get("remove"):
            return ""
        return self.cleaned_data["slack_webhook_url"] or current


class HookForm(_StyledForm):
    target_url = forms.URLField(
        label=_("URL"),
        max_length=2000,
        assume_scheme="https",
        help_text=_("http:// or https://"),
        error_messages=URL_ERRORS,
    )
    events = forms.MultipleChoiceField(
        label=_("Events"), widget=forms.CheckboxSelectMultiple, choices=()
    )
    description = forms.CharField(label=_("Description"), max_length=200, required=False)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        field = self.fields["events"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(key, f"{key}: {label}") for key, label in sorted(HOOK_EVENTS.items())]

    def clean_target_url(self) -> str:
        url: str = self.cleaned_data["target_url"]
        problem = outbound_url_problem(url)
        if problem:
            raise forms.ValidationError(problem, code="invalid")
        return url

"""Settings pages, for admins: users and roles, API and write keys, custom
fields, scoring, integrations. Each page answers an htmx GET with its section
alone; row actions (role, deactivate, revoke) are htmx POSTs that answer with
the changed row and redirect back without htmx. Secrets made here (a one-time
password, a new API key) ride in the session to the next page and are then gone."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.http import HtmxHttpRequest
from core.roles import Role, role_of_groups
from flows.hooks import HOOK_EVENTS, hook_deliveries, hook_subscribe, hook_unsubscribe
from flows.models import HookSubscription
from flows.outbound import outbound_url_problem
from leads.decorators import role_required
from leads.models import ApiKey, ApiScope, FieldDefinition, FieldType, LeadErasure
from leads.services.api_keys import api_key_create, api_key_revoke
from leads.services.fields import RESERVED_KEYS, FieldValueError, choice_options_clean
from leads.services.users import (
    UserChangeRefused,
    identity_secret_remove,
    identity_secret_rotate,
    integration_settings,
    integration_settings_update,
    user_active_set,
    user_invite,
    user_reset_link_send,
    user_role_set,
)
from scoring.models import ScoreCategory
from scoring.services import (
    CategoryDeleteRefused,
    score_category_delete,
    scoring_settings,
    scoring_settings_update,
)

admin_only = role_required(Role.ADMIN)

SESSION_ONE_TIME_PASSWORD = "settings.one_time_password"  # noqa: S105 - a session key
SESSION_NEW_API_KEY = "settings.new_api_key"
SESSION_NEW_IDENTITY_SECRET = "settings.new_identity_secret"  # noqa: S105 - a session key
KEY_PLACEHOLDER = "YOUR_WRITE_KEY"
# Providers whose tracking webhooks the README documents, in the order shown.
EMAIL_PROVIDERS = [
    ("sendgrid", "SendGrid"),
    ("mailgun", "Mailgun"),
    ("postmark", "Postmark"),
    ("brevo", "Brevo"),
]


def _page(request: HtmxHttpRequest, section: str, context: dict[str, Any]) -> HttpResponse:
    """The full page, or for an htmx GET the section alone."""
    context["section"] = section
    if request.htmx and request.method == "GET":
        return render(request, f"settings/_{section}.html", context)
    return render(request, f"settings/{section}.html", context)


@admin_only
@require_GET
def settings_home(request: HtmxHttpRequest) -> HttpResponse:
    return redirect("settings-users")


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


# --- users ----------------------------------------------------------------------


class InviteForm(_StyledForm):
    DELIVERY_PASSWORD = "password"  # noqa: S105 - a choice value, not a password
    DELIVERY_LINK = "link"

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


def _role_of(user: User) -> str | None:
    """As ``user_role`` decides it, from prefetched groups (no query per row)."""
    if user.is_superuser:
        return Role.ADMIN
    return role_of_groups(group.name for group in user.groups.all())


def _user_rows() -> QuerySet[User]:
    return User.objects.prefetch_related("groups").order_by("username")


def _user_row_context(user: User) -> dict[str, Any]:
    user.role = _role_of(user)  # type: ignore[attr-defined]
    return {"person": user, "roles": Role.choices}


@admin_only
@require_http_methods(["GET", "POST"])
def user_list(request: HtmxHttpRequest) -> HttpResponse:
    """Users with their role, active flag and last login; the invite form."""
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        user, password = user_invite(
            username=data["username"], email=data["email"], role=data["role"]
        )
        if data["delivery"] == InviteForm.DELIVERY_LINK:
            user_reset_link_send(
                user=user, domain=request.get_host(), use_https=request.is_secure()
            )
            messages.success(
                request,
                gettext("%(username)s is invited: a link to set a password went to %(email)s.")
                % {"username": user.username, "email": user.email},
            )
        else:
            request.session[SESSION_ONE_TIME_PASSWORD] = {
                "username": user.username,
                "password": password,
            }
        return redirect("settings-users")
    users = list(_user_rows())
    for user in users:
        user.role = _role_of(user)  # type: ignore[attr-defined]
    context = {
        "users": users,
        "roles": Role.choices,
        "form": form,
        "one_time": request.session.pop(SESSION_ONE_TIME_PASSWORD, None),
    }
    return _page(request, "users", context)


def _user_row_response(request: HtmxHttpRequest, user: User, error: str = "") -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("settings-users")
    context = _user_row_context(user)
    context["row_error"] = error
    return render(request, "settings/_user_row.html", context, status=422 if error else 200)


@admin_only
@require_POST
def user_role_change(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(_user_rows(), pk=pk)
    role = request.POST.get("role", "")
    if role not in Role.values:
        return _user_row_response(request, user, gettext("Choose one of the roles."))
    try:
        user_role_set(user=user, role=role, by=request.user)
    except UserChangeRefused as exc:
        return _user_row_response(request, user, str(exc))
    return _user_row_response(request, get_object_or_404(_user_rows(), pk=pk))


@admin_only
@require_POST
def user_active_change(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(_user_rows(), pk=pk)
    try:
        user_active_set(user=user, active=request.POST.get("active") == "1", by=request.user)
    except UserChangeRefused as exc:
        return _user_row_response(request, user, str(exc))
    return _user_row_response(request, user)


# --- API keys and write keys ------------------------------------------------------


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


def _base_url(request: HtmxHttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


@admin_only
@require_http_methods(["GET", "POST"])
def api_key_list(request: HtmxHttpRequest) -> HttpResponse:
    """Keys by prefix (the key itself only once, right after creating it), and how
    to send data with a key as a Segment write key."""
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        row, key = api_key_create(
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            created_by=request.user,
        )
        request.session[SESSION_NEW_API_KEY] = {"id": row.pk, "key": key}
        return redirect("settings-api-keys")
    new_key = request.session.pop(SESSION_NEW_API_KEY, None)
    keys = ApiKey.objects.select_related("created_by").order_by("-created_at", "-id")
    context = {
        "keys": list(keys),
        "form": form,
        "new_key": new_key,
        "base_url": _base_url(request),
        "endpoint": request.build_absolute_uri("/v1/batch"),
        "sample_key": new_key["key"] if new_key else KEY_PLACEHOLDER,
    }
    return _page(request, "api_keys", context)


@admin_only
@require_POST
def api_key_revoke_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    api_key_revoke(key=key)
    if not request.htmx:
        messages.success(
            request, gettext("The key %(prefix)s is revoked.") % {"prefix": key.prefix}
        )
        return redirect("settings-api-keys")
    key.refresh_from_db(fields=["revoked_at"])
    return render(request, "settings/_api_key_row.html", {"key": key})


# --- custom fields ----------------------------------------------------------------

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


class FieldCreateForm(_FieldOptionsMixin):
    key = forms.CharField(
        label=_("Key"),
        max_length=64,
        help_text=_("Lower-case letters, digits and underscores; cannot change later."),
    )
    label = forms.CharField(label=_("Label"), max_length=120)
    type = forms.ChoiceField(label=_("Type"), choices=FieldType.choices)

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"].strip()
        if not FIELD_KEY_PATTERN.fullmatch(key):
            raise forms.ValidationError(
                _("Start with a letter; use lower-case letters, digits and underscores."),
                code="invalid",
            )
        if key in RESERVED_KEYS:
            raise forms.ValidationError(_("This is a standard lead field."), code="reserved")
        if FieldDefinition.objects.filter(key=key).exists():
            raise forms.ValidationError(_("A field with this key exists."), code="unique")
        return key

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "type" in data:
            data["options"] = self._clean_options(data["type"])
        return data


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


@admin_only
@require_http_methods(["GET", "POST"])
def field_list(request: HtmxHttpRequest) -> HttpResponse:
    form = FieldCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        FieldDefinition.objects.create(
            key=data["key"], label=data["label"], type=data["type"], options=data["options"]
        )
        messages.success(request, gettext("The field %(key)s is added.") % {"key": data["key"]})
        return redirect("settings-fields")
    context = {"fields": list(FieldDefinition.objects.order_by("key")), "form": form}
    return _page(request, "fields", context)


@admin_only
@require_http_methods(["GET", "POST"])
def field_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    definition = get_object_or_404(FieldDefinition, pk=pk)
    initial = {"label": definition.label, "options_text": "\n".join(definition.options)}
    form = FieldEditForm(request.POST or None, initial=initial, definition=definition)
    if request.method == "POST" and form.is_valid():
        definition.label = form.cleaned_data["label"]
        definition.options = form.cleaned_data["options"]
        definition.save(update_fields=["label", "options"])
        messages.success(request, gettext("The field %(key)s is saved.") % {"key": definition.key})
        return redirect("settings-fields")
    return _page(request, "field_edit", {"definition": definition, "form": form})


@admin_only
@require_POST
def field_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Remove the definition; values already on leads stay in their data."""
    definition = get_object_or_404(FieldDefinition, pk=pk)
    definition.delete()
    messages.success(request, gettext("The field %(key)s is deleted.") % {"key": definition.key})
    return redirect("settings-fields")


# --- scoring ----------------------------------------------------------------------


class ThresholdsForm(_StyledForm):
    warm_threshold = forms.IntegerField(label=_("Warm from"))
    hot_threshold = forms.IntegerField(label=_("Hot from"))
    mql_threshold = forms.IntegerField(label=_("MQL threshold"))
    mql_moves_stage = forms.BooleanField(
        label=_("Reaching the MQL threshold moves a subscriber or lead to MQL"), required=False
    )
    sales_can_adjust = forms.BooleanField(
        label=_("Sales reps may adjust scores by hand"), required=False
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        warm, hot = data.get("warm_threshold"), data.get("hot_threshold")
        if warm is not None and hot is not None and hot <= warm:
            self.add_error("hot_threshold", _("Hot must be above warm."))
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


def _scoring_context(**extra: Any) -> dict[str, Any]:
    current = scoring_settings()
    context: dict[str, Any] = {
        "categories": list(ScoreCategory.objects.order_by("id")),
        "thresholds_form": ThresholdsForm(
            initial={
                "warm_threshold": current.warm_threshold,
                "hot_threshold": current.hot_threshold,
                "mql_threshold": current.mql_threshold,
                "mql_moves_stage": current.mql_moves_stage,
                "sales_can_adjust": current.sales_can_adjust,
            }
        ),
        "category_form": CategoryForm(),
    }
    context.update(extra)
    return context


@admin_only
@require_http_methods(["GET", "POST"])
def scoring_page(request: HtmxHttpRequest) -> HttpResponse:
    """Categories, grade thresholds and the MQL rule. Moving a grade threshold
    regrades every lead (``scoring_settings_update``)."""
    if request.method == "POST":
        form = ThresholdsForm(request.POST)
        if form.is_valid():
            scoring_settings_update(**form.cleaned_data)
            messages.success(request, gettext("Scoring settings are saved."))
            return redirect("settings-scoring")
        return _page(request, "scoring", _scoring_context(thresholds_form=form))
    return _page(request, "scoring", _scoring_context())


@admin_only
@require_POST
def category_add(request: HtmxHttpRequest) -> HttpResponse:
    form = CategoryForm(request.POST)
    if form.is_valid():
        category = form.save()
        messages.success(request, gettext("The category %(key)s is added.") % {"key": category.key})
        return redirect("settings-scoring")
    return _page(request, "scoring", _scoring_context(category_form=form))


@admin_only
@require_POST
def category_rename(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    category = get_object_or_404(ScoreCategory, pk=pk)
    label = request.POST.get("label", "").strip()[:80]
    if label:
        ScoreCategory.objects.filter(pk=pk).update(label=label)
        messages.success(
            request, gettext("The category %(key)s is renamed.") % {"key": category.key}
        )
    else:
        messages.error(request, gettext("A category needs a label."))
    return redirect("settings-scoring")


@admin_only
@require_POST
def category_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Only a custom category that no score change uses (``score_category_delete``)."""
    category = get_object_or_404(ScoreCategory, pk=pk)
    try:
        score_category_delete(category=category)
    except CategoryDeleteRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(
            request, gettext("The category %(key)s is deleted.") % {"key": category.key}
        )
    return redirect("settings-scoring")


# --- integrations -----------------------------------------------------------------


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


def _webhook_url(request: HtmxHttpRequest, esp: str) -> str:
    """The tracking webhook of ``esp`` with the basic-auth credentials anymail
    checks written into it, as the providers take them."""
    parts = urlsplit(request.build_absolute_uri(reverse(f"anymail:{esp}_tracking_webhook")))
    secret = settings.ANYMAIL.get("WEBHOOK_SECRET", "")
    netloc = f"{secret}@{parts.netloc}" if secret else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


PROVIDER_STEPS = {
    "sendgrid": [
        _("In SendGrid, open Settings → Mail Settings → Event Webhook."),
        _("Paste the URL as the HTTP Post URL."),
        _(
            "Select Delivered, Opened, Clicked, Bounced, Dropped, Spam Reports and "
            "Unsubscribe, then enable the webhook and save."
        ),
    ],
    "mailgun": [
        _("In Mailgun, open Sending → Webhooks for your domain."),
        _(
            "Add the URL for Delivered, Opened, Clicked, Permanent failure, Spam complaints "
            "and Unsubscribes."
        ),
        _("Set MAILGUN_WEBHOOK_SIGNING_KEY to the HTTP webhook signing key shown there."),
    ],
    "postmark": [
        _("In Postmark, open your server → Message Streams → Webhooks → Add webhook."),
        _("Paste the URL."),
        _("Tick Delivery, Bounce, Spam complaint, Open, Link click and Subscription change."),
    ],
    "brevo": [
        _("In Brevo, open Transactional → Settings → Webhook → Add a new webhook."),
        _("Paste the URL."),
        _(
            "Select Delivered, Opened, Clicked, Hard bounce, Soft bounce, Spam and "
            "Unsubscribed, then save."
        ),
    ],
}


@admin_only
@require_http_methods(["GET", "POST"])
def integrations_page(request: HtmxHttpRequest) -> HttpResponse:
    current = integration_settings()
    form = SlackForm(request.POST or None, saved=bool(current.slack_webhook_url))
    if request.method == "POST" and form.is_valid():
        integration_settings_update(slack_webhook_url=form.new_url(current.slack_webhook_url))
        messages.success(request, gettext("Integration settings are saved."))
        return redirect("settings-integrations")
    providers = [
        {"key": esp, "name": name, "url": _webhook_url(request, esp), "steps": PROVIDER_STEPS[esp]}
        for esp, name in EMAIL_PROVIDERS
    ]
    context = {
        "form": form,
        "providers": providers,
        "identity_secret_created_at": current.identity_secret_created_at,
        "new_identity_secret": request.session.pop(SESSION_NEW_IDENTITY_SECRET, None),
    }
    return _page(request, "integrations", context)


@admin_only
@require_POST
def identity_secret_change(request: HtmxHttpRequest) -> HttpResponse:
    """Make (or replace) the identity-verification secret, shown once on the
    next page; or remove it (``remove``)."""
    if request.POST.get("remove"):
        identity_secret_remove()
        messages.success(request, gettext("Identity verification is turned off."))
    else:
        request.session[SESSION_NEW_IDENTITY_SECRET] = identity_secret_rotate()
    return redirect("settings-integrations")


# --- webhooks (outbound event subscriptions) -------------------------------------

SESSION_NEW_HOOK_SECRET = "settings.new_hook_secret"  # noqa: S105 - a session key
DELIVERY_LOG_SIZE = 50


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


@admin_only
@require_http_methods(["GET", "POST"])
def webhooks_page(request: HtmxHttpRequest) -> HttpResponse:
    """Outbound event subscriptions (the secret only once, right after
    subscribing) and the log of their latest deliveries; ``?hook=<id>`` narrows
    the log to one subscription."""
    form = HookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        hook = hook_subscribe(
            target_url=form.cleaned_data["target_url"],
            events=form.cleaned_data["events"],
            description=form.cleaned_data["description"],
            created_by=request.user,
        )
        request.session[SESSION_NEW_HOOK_SECRET] = {"id": hook.pk, "secret": hook.secret}
        return redirect("settings-webhooks")
    hooks = list(HookSubscription.objects.select_related("created_by").order_by("-id"))
    shown = next((h for h in hooks if str(h.pk) == request.GET.get("hook")), None)
    deliveries = hook_deliveries(hook=shown).select_related("hook")[:DELIVERY_LOG_SIZE]
    context = {
        "form": form,
        "hooks": hooks,
        "shown": shown,
        "deliveries": list(deliveries),
        "new_secret": request.session.pop(SESSION_NEW_HOOK_SECRET, None),
    }
    return _page(request, "webhooks", context)


@admin_only
@require_POST
def webhook_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    hook_unsubscribe(hook=get_object_or_404(HookSubscription, pk=pk))
    if not request.htmx:
        messages.success(request, gettext("The subscription is deleted."))
        return redirect("settings-webhooks")
    return HttpResponse("")


# --- privacy ------------------------------------------------------------------------

PRIVACY_PAGE_SIZE = 100


@admin_only
@require_GET
def privacy_page(request: HtmxHttpRequest) -> HttpResponse:
    """The record of erased leads (nothing about the people themselves)."""
    erasures = LeadErasure.objects.select_related("erased_by").order_by("-erased_at", "-id")
    return _page(request, "privacy", {"erasures": erasures[:PRIVACY_PAGE_SIZE]})

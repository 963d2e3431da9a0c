"""Settings pages, for admins: users and roles, API and write keys, custom
fields, scoring, integrations. Each page answers an htmx GET with its section
alone; row actions (role, deactivate, revoke) are htmx POSTs that answer with
the changed row and redirect back without htmx. Secrets made here (a one-time
password, a new API key) ride in the session to the next page and are then gone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
from flows.hooks import hook_deliveries, hook_subscribe, hook_unsubscribe
from flows.models import HookSubscription
from leads.decorators import role_required
from leads.models import ApiKey, FieldDefinition, LeadErasure
from leads.services.api_keys import api_key_create, api_key_revoke
from leads.services.users import (
    UserChangeRefused,
    identity_secret_remove,
    identity_secret_rotate,
    integration_settings,
    integration_settings_update,
    user_active_set,
    user_invite,
    user_name_set,
    user_reset_link_send,
    user_role_set,
)
from pages.forms.settings import (
    ApiKeyForm,
    CategoryForm,
    CategorySettingsForm,
    FieldCreateForm,
    FieldEditForm,
    HookForm,
    InviteForm,
    SlackForm,
    ThresholdsForm,
    UserNameForm,
)
from pages.selectors.review import log_rows
from scoring.models import ReviewLogEntry, ScoreCategory
from scoring.services import (
    CategoryDeleteRefused,
    score_category_delete,
    score_category_update,
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


# --- users ----------------------------------------------------------------------


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
            username=data["username"],
            email=data["email"],
            role=data["role"],
            first_name=data["first_name"],
            last_name=data["last_name"],
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
def user_name_change(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Set a user's first and last name (the name every page shows for them)."""
    user = get_object_or_404(_user_rows(), pk=pk)
    form = UserNameForm(request.POST)
    if not form.is_valid():
        return _user_row_response(request, user, gettext("A name can have 150 characters."))
    user_name_set(
        user=user,
        first_name=form.cleaned_data["first_name"],
        last_name=form.cleaned_data["last_name"],
    )
    return _user_row_response(request, user)


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


SETTINGS_FIELDS = tuple(ThresholdsForm.base_fields)
CATEGORY_FIELDS = tuple(CategorySettingsForm.base_fields)


def _category_form(category: ScoreCategory, data: Any = None) -> CategorySettingsForm:
    return CategorySettingsForm(
        data,
        prefix=f"category-{category.pk}",
        category_key=category.key,
        initial={name: getattr(category, name) for name in CATEGORY_FIELDS},
    )


def _scoring_context(**extra: Any) -> dict[str, Any]:
    current = scoring_settings()
    categories = list(ScoreCategory.objects.order_by("id"))
    bound = extra.pop("category_bound", None)
    rows = [
        (
            category,
            bound
            if bound is not None and bound.prefix == f"category-{category.pk}"
            else _category_form(category),
        )
        for category in categories
    ]
    context: dict[str, Any] = {
        "categories": categories,
        "category_rows": rows,
        "thresholds_form": ThresholdsForm(
            initial={name: getattr(current, name) for name in SETTINGS_FIELDS}
        ),
        "category_form": CategoryForm(),
        "review_log": log_rows(list(ReviewLogEntry.objects.select_related("user")[:5])),
    }
    context.update(extra)
    return context


def _user(request: HtmxHttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


@admin_only
@require_http_methods(["GET", "POST"])
def scoring_page(request: HtmxHttpRequest) -> HttpResponse:
    """Categories (cap, decay), grades (thresholds, the hot rule, both axes) and
    the MQL rule. Moving anything a grade depends on regrades every lead
    (``scoring_settings_update``); every change goes into the review log."""
    if request.method == "POST":
        form = ThresholdsForm(request.POST)
        if form.is_valid():
            scoring_settings_update(user=_user(request), **form.cleaned_data)
            messages.success(request, gettext("Scoring settings are saved."))
            return redirect("settings-scoring")
        return _page(request, "scoring", _scoring_context(thresholds_form=form))
    return _page(request, "scoring", _scoring_context())


@admin_only
@require_POST
def category_settings(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A category's cap and decay (``score_category_update``)."""
    category = get_object_or_404(ScoreCategory, pk=pk)
    form = _category_form(category, request.POST)
    if not form.is_valid():
        return _page(request, "scoring", _scoring_context(category_bound=form))
    score_category_update(category=category, user=_user(request), **form.cleaned_data)
    messages.success(request, gettext("The category %(key)s is saved.") % {"key": category.key})
    return redirect("settings-scoring")


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
        score_category_update(category=category, user=_user(request), label=label)
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

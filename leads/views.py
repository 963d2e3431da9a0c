from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from prometheus_client import CONTENT_TYPE_LATEST

from core.http import HtmxHttpRequest
from core.roles import ADMIN_MARKETER, ALL_ROLES, Role
from leads.decorators import role_required
from leads.forms import LanguageForm, LeadImportMappingForm, LeadImportUploadForm, wait_message
from leads.models import LeadImport
from leads.roles import user_role
from leads.selectors import user_language
from leads.services.health import OPTIONAL_PARTS, health_report
from leads.services.imports import (
    import_guess_mapping,
    import_read_headers,
    lead_import_start,
    lead_import_upload,
)
from leads.services.metrics import metrics_text
from leads.services.preferences import user_language_set
from leads.services.throttle import client_address, rate_hit


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 "ok"; 200 "degraded" when no worker or beat was seen lately (503 if
    ``?require=worker,scheduler`` names it); 503 "error" when the database or
    the broker does not answer."""
    require = [part for part in request.GET.get("require", "").split(",") if part]
    unknown = sorted(set(require) - set(OPTIONAL_PARTS))
    if unknown:
        return JsonResponse(
            {"error": f"require takes {', '.join(OPTIONAL_PARTS)}; not {', '.join(unknown)}"},
            status=400,
        )
    status, report = health_report(require=require)
    return JsonResponse(report, status=status)


@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for a scraper sending ``METRICS_TOKEN`` as a bearer
    token, or an admin signed in."""
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    by_token = bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    if not by_token and user_role(request.user) != Role.ADMIN:
        return HttpResponse(
            "Send METRICS_TOKEN as a bearer token, or sign in as an admin.\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)


@role_required(*ADMIN_MARKETER)
def lead_import_new(request: HtmxHttpRequest) -> HttpResponse:
    """Step 1 uploads the file; step 2 maps its columns and starts the import."""
    if request.method == "POST" and "mapping_step" in request.POST:
        pending_id = request.session.get("lead_import_upload")
        pending = (
            LeadImport.objects.filter(pk=pending_id, status="pending", mapping={}).first()
            if isinstance(pending_id, int)
            else None
        )
        if pending is None:
            return redirect("lead-import")
        with pending.file.open("rb") as stream:
            headers = import_read_headers(stream)
        form = LeadImportMappingForm(request.POST, headers=headers, initial_mapping={})
        if form.is_valid():
            lead_import_start(record=pending, mapping=form.cleaned_data["mapping"])
            del request.session["lead_import_upload"]
            return redirect("lead-import-detail", pk=pending.pk)
        return render(request, "leads/import_mapping.html", {"form": form, "upload": pending})
    if request.method == "POST":
        upload_form = LeadImportUploadForm(request.POST, request.FILES)
        if upload_form.is_valid():
            headers = upload_form.headers
            pending = lead_import_upload(
                upload=upload_form.cleaned_data["file"], created_by=request.user
            )
            request.session["lead_import_upload"] = pending.pk
            form = LeadImportMappingForm(
                headers=headers, initial_mapping=import_guess_mapping(headers)
            )
            return render(request, "leads/import_mapping.html", {"form": form, "upload": pending})
    else:
        upload_form = LeadImportUploadForm()
    recent = LeadImport.objects.exclude(mapping={}).order_by("-id")[:10]
    return render(request, "leads/import_upload.html", {"form": upload_form, "recent": recent})


@role_required(*ADMIN_MARKETER)
def lead_import_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(LeadImport, pk=pk)
    template = "leads/_import_progress.html" if request.htmx else "leads/import_detail.html"
    return render(request, template, {"record": record})


@role_required(*ALL_ROLES)
@require_http_methods(["GET", "POST"])
def account_language(request: HtmxHttpRequest) -> HttpResponse:
    """Account → Language: the language of the user's pages, kept on the server
    so it follows them to every device; blank follows the browser."""
    if request.method == "POST":
        form = LanguageForm(request.POST)
        if form.is_valid():
            language = form.cleaned_data["language"]
            user_language_set(user=request.user, language=language)
            # The confirmation is already in the language just chosen.
            translation.activate(language or translation.get_language_from_request(request))
            messages.success(request, gettext("Your language is saved."))
            response = redirect("account-language")
            # The cookie keeps the choice for the login page after signing out.
            if language:
                response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, samesite="Lax")
            else:
                response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
            return response
    else:
        form = LanguageForm(initial={"language": user_language(request.user)})
    return render(request, "leads/account_language.html", {"form": form})


class PasswordResetView(auth_views.PasswordResetView):
    """Django's "forgot password" page, with a limit on the mails one address may
    ask for, and on the mails one account receives: it must not become a way to
    flood an inbox. It opens no door to the account by itself: the link sets a new
    password, and signing in still goes through the lockout."""

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        window = settings.LOGIN_LOCKOUT_SECONDS
        limit = settings.PASSWORD_RESET_LIMIT
        email = hashlib.sha256(form.cleaned_data["email"].lower().encode()).hexdigest()[:32]
        wait = max(
            rate_hit(f"reset:address:{client_address(self.request)}", limit=limit, window=window),
            rate_hit(f"reset:email:{email}", limit=limit, window=window),
        )
        if wait:
            form.add_error(None, wait_message(wait))
            return self.form_invalid(form)
        return super().form_valid(form)

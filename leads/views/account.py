"""A user's own account: the language of their pages, a forgotten password."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from core.http import HtmxHttpRequest
from core.roles import ALL_ROLES
from leads.decorators import role_required
from leads.forms.account import LanguageForm, wait_message
from leads.selectors import user_language
from leads.services.preferences import user_language_set
from leads.services.throttle import client_address, rate_hit


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

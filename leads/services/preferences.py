"""Writes to a user's own settings."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from leads.models import UserPreference


@transaction.atomic
def user_language_set(*, user: User, language: str) -> UserPreference:
    """Save the language the user's pages are shown in; "" goes back to the
    browser's language."""
    if language and language not in dict(settings.LANGUAGES):
        raise ValidationError(gettext("Choose one of the listed languages."), code="language")
    preference, _ = UserPreference.objects.update_or_create(
        user=user, defaults={"language": language}
    )
    # Keep the user's cached preference (joined when it was loaded) in step.
    user.preference = preference
    return preference

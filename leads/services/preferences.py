"""Writes to a user's own settings."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from leads.columns import lead_columns_available
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


@transaction.atomic
def user_lead_columns_set(*, user: User, columns: list[str]) -> UserPreference:
    """Save the leads list's columns (``leads.columns`` keys) in their order;
    unknown keys and repeats are dropped."""
    known = {column.key for column in lead_columns_available()}
    kept = [key for key in dict.fromkeys(columns) if key in known]
    preference, _ = UserPreference.objects.update_or_create(
        user=user, defaults={"lead_columns": kept}
    )
    user.preference = preference
    return preference

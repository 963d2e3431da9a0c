"""The session authentication backend: Django's, with the user's preferences
joined to the one query that loads the signed-in user on every request."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User


class PreferenceModelBackend(ModelBackend):
    def get_user(self, user_id: Any) -> User | None:
        user = User.objects.select_related("preference").filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None

"""The session authentication backend: Django's, with the user's preferences
joined to the one query that loads the signed-in user on every request, and
failed sign-ins counted so that guessing passwords locks the account or the
address for a while (every path that checks a password goes through here: the
login page, the admin's)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.http import HttpRequest

from leads.services.throttle import (
    client_address,
    login_failure_record,
    login_lockout_seconds,
    login_success_record,
)


class PreferenceModelBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        address = client_address(request)
        # Locked means refused, even with the right password: that is the point.
        if login_lockout_seconds(username=username, address=address):
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failure_record(username=username, address=address)
        else:
            login_success_record(username=username)
        return user

    def get_user(self, user_id: Any) -> User | None:
        user = User.objects.select_related("preference").filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None

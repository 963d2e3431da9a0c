"""People who sign in: invitations, roles, deactivation; and the one-row
integration settings admins edit next to them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from core.roles import Role
from leads.models import IntegrationSettings

RESET_SUBJECT_TEMPLATE = "settings/password_reset_subject.txt"
RESET_EMAIL_TEMPLATE = "settings/password_reset_email.txt"


class UserChangeRefused(ValueError):
    """An admin may not lock themselves out: no deactivating or demoting yourself."""


class _OneUserResetForm(PasswordResetForm):
    """Django's reset mail for exactly one user, not everyone sharing the address."""

    def __init__(self, user: User):
        super().__init__(data={"email": user.email})
        self.user = user

    def get_users(self, email: str) -> Iterator[User]:
        yield self.user


def user_reset_link_send(*, user: User, domain: str, use_https: bool) -> None:
    """Email ``user`` a link to set their password (Django's reset tokens)."""
    form = _OneUserResetForm(user)
    form.is_valid()
    form.save(
        domain_override=domain,
        use_https=use_https,
        subject_template_name=RESET_SUBJECT_TEMPLATE,
        email_template_name=RESET_EMAIL_TEMPLATE,
    )


@transaction.atomic
def user_invite(
    *, username: str, email: str, role: str, first_name: str = "", last_name: str = ""
) -> tuple[User, str]:
    """Create an active user with ``role`` and a random password, returned once so
    it can be handed over or replaced by a reset link."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(
        username=username,
        email=email,
        password=password,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
    )
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user, password


@transaction.atomic
def user_role_set(*, user: User, role: str, by: User) -> None:
    """Give ``user`` exactly one of the roles."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    if user.pk == by.pk:
        raise UserChangeRefused(gettext("You cannot change your own role."))
    user.groups.remove(*Group.objects.filter(name__in=Role.values))
    user.groups.add(Group.objects.get_or_create(name=role)[0])


def user_name_set(*, user: User, first_name: str, last_name: str) -> None:
    """Give ``user`` the full name every page shows for them (``person_name``);
    blank shows the username."""
    user.first_name, user.last_name = first_name.strip(), last_name.strip()
    user.save(update_fields=["first_name", "last_name"])


def user_active_set(*, user: User, active: bool, by: User) -> None:
    """Deactivate (they can no longer sign in; their leads and tasks stay) or
    reactivate a user."""
    if user.pk == by.pk:
        raise UserChangeRefused(gettext("You cannot deactivate yourself."))
    User.objects.filter(pk=user.pk).update(is_active=active)
    user.is_active = active


def integration_settings() -> IntegrationSettings:
    return (
        IntegrationSettings.objects.order_by("id").first() or IntegrationSettings.objects.create()
    )


def identity_secret_rotate() -> str:
    """Make a new identity-verification secret (the old one stops verifying at
    once) and return it: it is shown this once."""
    row = integration_settings()
    row.identity_secret = secrets.token_hex(32)
    row.identity_secret_created_at = timezone.now()
    row.save(update_fields=["identity_secret", "identity_secret_created_at", "updated_at"])
    return row.identity_secret


def identity_secret_remove() -> None:
    """No identity verification: ingest keys only fill empty fields."""
    row = integration_settings()
    row.identity_secret = ""
    row.identity_secret_created_at = None
    row.save(update_fields=["identity_secret", "identity_secret_created_at", "updated_at"])


def integration_settings_update(*, slack_webhook_url: str) -> IntegrationSettings:
    """Save the team's Slack incoming-webhook URL (blank to disconnect)."""
    row = integration_settings()
    row.slack_webhook_url = slack_webhook_url
    row.save(update_fields=["slack_webhook_url", "updated_at"])
    return row

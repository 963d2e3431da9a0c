"""Links in email that work without a login: unsubscribe and the double opt-in
confirmation. Each carries a token signed with the site's secret key (and a
salt of its own, so one kind of token is never accepted as the other): it names
the lead but cannot be guessed or altered."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

from leads.models import Lead

UNSUBSCRIBE_SALT = "emails.unsubscribe"
CONFIRM_SALT = "emails.consent-confirm"
# How long a double opt-in link works; a later one needs a new sign-up.
CONFIRM_MAX_AGE = 7 * 24 * 3600


@dataclass(frozen=True)
class UnsubscribeToken:
    lead_id: int
    send_key: str


def _absolute(path: str) -> str:
    return str(settings.SITE_URL).rstrip("/") + path


def unsubscribe_token(*, lead: Lead, send_key: str = "") -> str:
    return signing.dumps({"l": lead.pk, "k": send_key}, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_url(*, lead: Lead, send_key: str = "") -> str:
    """The absolute unsubscribe link for ``lead`` (for the footer and the
    ``List-Unsubscribe`` header): a GET shows a page with one button, a POST
    (the button, or a mail provider's RFC 8058 one-click) unsubscribes.
    ``send_key``: the send it came from, kept with the unsubscribe."""
    token = unsubscribe_token(lead=lead, send_key=send_key)
    return _absolute(reverse("email-unsubscribe", kwargs={"token": token}))


def unsubscribe_token_read(token: str) -> UnsubscribeToken | None:
    """What a token names, or None if it was not made here or was altered.
    Unsubscribe links do not expire: an old email's link must still work."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("l"), int):
        return None
    return UnsubscribeToken(lead_id=data["l"], send_key=str(data.get("k") or ""))


def confirm_url(*, record_id: int) -> str:
    """The absolute double opt-in link for the pending request ``record_id``
    (a ``ConsentRecord``); it works for ``CONFIRM_MAX_AGE`` seconds."""
    token = signing.dumps({"r": record_id}, salt=CONFIRM_SALT, compress=True)
    return _absolute(reverse("email-consent-confirm", kwargs={"token": token}))


class ConfirmTokenExpired(Exception):
    pass


def confirm_token_read(token: str) -> int | None:
    """The pending request a confirmation token names; None if it was not made
    here or was altered; raises ``ConfirmTokenExpired`` if it is too old."""
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise ConfirmTokenExpired from exc
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("r"), int):
        return None
    return int(data["r"])

"""Opens and clicks of the emails we send: the pixel's and the tracked links'
URLs (a random token per send, signed), and what loading them records.

A tracked link carries the original URL and a signature of (token, URL) under
the site's secret: the redirect goes only to a URL that was in that email, so
the endpoint is no open redirect. Each open and click becomes an ``email.*``
event keyed like the provider's webhook reports of the same thing
(``leads.services.email_events.email_event_key``): one open is one event."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from emails.models import EmailSend
from leads.services.email_events import email_event_build, machine_open_reason
from leads.services.events import events_record

_OPEN_SALT = "emails.tracking.open"
_CLICK_SALT = "emails.tracking.click"


def open_pixel_url(*, send: EmailSend) -> str:
    signed = signing.Signer(salt=_OPEN_SALT).sign(send.token)
    return f"{settings.SITE_URL}/e/o/{signed}.gif"


def _click_signature(token: str, url: str) -> str:
    return signing.Signer(salt=_CLICK_SALT).signature(f"{token}\n{url}")


def link_wrapper(*, send: EmailSend) -> Callable[[str], str]:
    """The ``link_wrap`` of the renderer: each http(s) link through our redirect;
    mailto:, tel: and anchors stay as they are."""

    def wrap(url: str) -> str:
        if urlsplit(url).scheme not in ("http", "https"):
            return url
        return (
            f"{settings.SITE_URL}/e/c/{send.token}/"
            f"?u={quote(url, safe='')}&s={_click_signature(send.token, url)}"
        )

    return wrap


def open_token(signed: str) -> str | None:
    """The send's token of a pixel URL's signed part; None when it is forged."""
    try:
        return signing.Signer(salt=_OPEN_SALT).unsign(signed)
    except signing.BadSignature:
        return None


def click_target(*, token: str, url: str, signature: str) -> str | None:
    """The URL to redirect to, when the signature says the email held it."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    if not constant_time_compare(signature, _click_signature(token, url)):
        return None
    return url


def email_open_record(*, token: str, user_agent: str, now: dt.datetime | None = None) -> bool:
    """Record that a send's pixel loaded: an ``email.opened`` event (a machine's
    open flagged, see ``machine_open_reason``) and the send's first open time.
    False for a token that names no sent email."""
    return _record(token=token, type_="opened", url="", user_agent=user_agent, now=now)


def email_click_record(
    *, token: str, url: str, user_agent: str, now: dt.datetime | None = None
) -> bool:
    """Record a click of a tracked link: ``email.clicked`` and the first click time."""
    return _record(token=token, type_="clicked", url=url, user_agent=user_agent, now=now)


def _record(*, token: str, type_: str, url: str, user_agent: str, now: dt.datetime | None) -> bool:
    now = now or timezone.now()
    send = (
        EmailSend.objects.filter(token=token)
        .select_related("template")
        .only(
            "pk",
            "key",
            "lead_id",
            "to_email",
            "message_id",
            "provider",
            "provider_message_id",
            "sent_at",
            "template__name",
            "flow_id",
            "node_id",
        )
        .first()
    )
    if send is None or send.sent_at is None or not send.to_email:
        return False
    extra: dict[str, object] = {"send": send.key}
    if send.flow_id:
        extra["flow"] = send.flow_id
        extra["node"] = send.node_id
    machine = ""
    if type_ == "opened":
        machine = machine_open_reason(
            user_agent=user_agent, seconds_after_send=(now - send.sent_at).total_seconds()
        )
        if machine:
            extra["machine"] = machine
    event = email_event_build(
        type_=type_,
        email=send.to_email,
        provider=send.provider or "smtp",
        event_id=None,
        occurred_at=now,
        # The id the provider's webhooks report this message by.
        message_id=send.provider_message_id or send.message_id,
        campaign=send.template.name if send.template is not None else "",
        url=url,
        extra=extra,
    )
    with transaction.atomic():
        events_record(events=[event])
        if not machine:
            field = "opened_at" if type_ == "opened" else "clicked_at"
            EmailSend.objects.filter(pk=send.pk, **{f"{field}__isnull": True}).update(
                **{field: now}
            )
    return True

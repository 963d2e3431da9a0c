"""Who may receive marketing email: one rule, read at send time by the send
step, its dry run and the pages that explain a skip."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.utils.translation import gettext as _

from emails.models import EmailKind, FrequencyPeriod, HoldReason, SendStatus
from leads.models import ConsentState, Lead


def marketing_block_reason(*, lead: Lead, require_double_opt_in: bool) -> str | None:
    """Why this lead must not get a marketing email now, in words; None if it may.

    Unsubscribed (or complained), hard-bounced and withdrawn leads never do; with
    double opt-in required only a confirmed consent lets one through."""
    if not lead.email:
        return _("the lead has no email address")
    if lead.unsubscribed:
        return _("unsubscribed")
    if lead.email_bounced_at is not None:
        return _("the address bounced")
    if lead.consent_state == ConsentState.WITHDRAWN:
        return _("consent withdrawn")
    if require_double_opt_in and lead.consent_state != ConsentState.CONFIRMED:
        if lead.consent_state == ConsentState.PENDING:
            return _("consent not yet confirmed")
        return _("no confirmed consent")
    return None


def send_skip_reason(*, lead: Lead, kind: str, require_double_opt_in: bool) -> str | None:
    """Why this email is not sent to the lead at all, in words; None if it may go.

    Marketing email follows ``marketing_block_reason``; a transactional one (a
    confirmation, a note) is skipped only when there is no address to send it to.
    The send step, its dry run and the sender at send time all ask this."""
    if kind == EmailKind.TRANSACTIONAL:
        return None if lead.email else _("the lead has no email address")
    return marketing_block_reason(lead=lead, require_double_opt_in=require_double_opt_in)


def send_window_opens(
    *, now: dt.datetime, time_zone: str, start: dt.time | None, end: dt.time | None
) -> dt.datetime | None:
    """When the send window next opens in ``time_zone`` if ``now`` is outside it;
    None when there is no window or ``now`` is inside. A window may pass midnight
    (22:00 to 06:00). An unknown zone counts as the site's."""
    if start is None or end is None or start == end:
        return None
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(time_zone) if time_zone else _site_zone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = _site_zone()
    local = now.astimezone(zone)
    at = local.time()
    inside = start <= at < end if start < end else (at >= start or at < end)
    if inside:
        return None
    opens = dt.datetime.combine(local.date(), start, tzinfo=zone)
    if opens <= local:
        opens = dt.datetime.combine(local.date() + dt.timedelta(days=1), start, tzinfo=zone)
    return opens.astimezone(dt.UTC)


def _site_zone() -> dt.tzinfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def frequency_window(period: str) -> dt.timedelta:
    """How far back the per-lead frequency cap counts."""
    return dt.timedelta(days=7 if period == FrequencyPeriod.WEEK else 1)


# What an admin may do with a send that needs attention (the held sends page and
# its services both ask here).
SEND_NOW = "send-now"
RETRY = "retry"
CANCEL = "cancel"


def send_actions(*, status: str, held_for: str) -> tuple[str, ...]:
    """The actions a send offers, in the order shown.

    A failed send may be retried: it is claimed again under the rules at send
    time (consent, suppression, the window, the cap), so nothing is sent that
    should not be. Of the holds only the send window gives way to "send now":
    it is the team's own preference for the hour. The frequency cap is a
    promise to the lead, the rate protects the sending reputation and the
    provider's limits, and the postal address is the law; those wait (or are
    cancelled). Anything not yet sent may be cancelled."""
    if status == SendStatus.FAILED:
        return (RETRY, CANCEL)
    if status == SendStatus.HELD and held_for == HoldReason.SEND_WINDOW:
        return (SEND_NOW, CANCEL)
    if status in (SendStatus.HELD, SendStatus.QUEUED):
        return (CANCEL,)
    return ()


def send_explanation(*, status: str, held_for: str, frequency_period: str) -> str:
    """What the admin reads beside a held or failed send: why, what happens next
    and why an action is missing."""
    if status == SendStatus.FAILED:
        return _(
            "The mail server or provider refused it, or could not be reached on any try. "
            "Retry sends it again now, after the rules at send time."
        )
    if held_for == HoldReason.POSTAL_ADDRESS:
        return _(
            "Marketing email must carry the sender's postal address. Add it in the email "
            "settings; held emails go out within ten minutes after."
        )
    if held_for == HoldReason.SEND_WINDOW:
        return _(
            "It goes when the send window opens in the lead's time zone. Send now sends it "
            "outside the window; consent and the frequency cap still apply."
        )
    if held_for == HoldReason.FREQUENCY_CAP:
        period = _("this week") if frequency_period == FrequencyPeriod.WEEK else _("today")
        return _(
            "The lead already got as many marketing emails as the cap allows %(period)s; it "
            "goes when an earlier one leaves the period. The cap protects the lead and cannot "
            "be overridden here: cancel the email or change the cap in the email settings."
        ) % {"period": period}
    if held_for == HoldReason.RATE:
        return _(
            "The sending rate per minute is reached; it goes out in the next minute. The rate "
            "protects your sending reputation and cannot be overridden here."
        )
    return _("It is tried again at the time shown.")

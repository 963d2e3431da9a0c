"""Who may receive marketing email: one rule, read at send time by the send
step, its dry run and the pages that explain a skip."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.utils.translation import gettext as _

from emails.models import EmailKind, FrequencyPeriod
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

"""Who may receive marketing email: one rule, read at send time by the send
step, its dry run and the pages that explain a skip."""

from __future__ import annotations

from django.utils.translation import gettext as _

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

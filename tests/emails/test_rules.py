"""Who may receive marketing email: the one rule the send step and its dry run read."""

from __future__ import annotations

import pytest
from django.utils import timezone

from emails.rules import marketing_block_reason
from leads.models import ConsentState
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("state", "double_opt_in", "expected"),
    [
        (ConsentState.CONFIRMED, True, None),
        (ConsentState.PENDING, True, "consent not yet confirmed"),
        (ConsentState.UNKNOWN, True, "no confirmed consent"),
        (ConsentState.WITHDRAWN, True, "consent withdrawn"),
        (ConsentState.UNKNOWN, False, None),
        (ConsentState.PENDING, False, None),
        (ConsentState.WITHDRAWN, False, "consent withdrawn"),
    ],
)
def test_consent_decides_with_and_without_double_opt_in(state, double_opt_in, expected):
    lead = LeadFactory.create(consent_state=state)

    assert marketing_block_reason(lead=lead, require_double_opt_in=double_opt_in) == expected


def test_unsubscribed_bounced_and_addressless_leads_are_blocked_even_when_confirmed():
    confirmed = ConsentState.CONFIRMED
    unsubscribed = LeadFactory.create(consent_state=confirmed, unsubscribed=True)
    bounced = LeadFactory.create(consent_state=confirmed, email_bounced_at=timezone.now())
    addressless = LeadFactory.create(consent_state=confirmed, email=None, external_id="u-1")

    assert marketing_block_reason(lead=unsubscribed, require_double_opt_in=False) == "unsubscribed"
    assert (
        marketing_block_reason(lead=bounced, require_double_opt_in=False) == "the address bounced"
    )
    assert marketing_block_reason(lead=addressless, require_double_opt_in=False) == (
        "the lead has no email address"
    )

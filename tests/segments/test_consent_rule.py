"""The segment rule on a lead's marketing consent: a choice, kept up to date as
the consent moves (``consent.changed`` re-checks it)."""

from __future__ import annotations

import pytest

from leads.models import ConsentSource, ConsentState, SegmentMembership
from leads.services.consent import consent_set
from segments.conditions import ConditionError, validate
from segments.conditions.words import rule_words
from segments.names import Names
from segments.services import segment_create
from tests.factories import LeadFactory
from tests.flows.helpers import drain

pytestmark = pytest.mark.django_db

CONFIRMED = {"all": [{"field": "consent_state", "op": "is", "value": "confirmed"}]}


def test_leads_enter_and_leave_as_their_consent_moves(django_capture_on_commit_callbacks):
    lead = LeadFactory.create(consent_state=ConsentState.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_create(name="Subscribers", conditions=CONFIRMED)

    def members() -> list[int]:
        return list(
            SegmentMembership.objects.filter(segment=segment, left_at__isnull=True).values_list(
                "lead_id", flat=True
            )
        )

    assert members() == []
    consent_set(lead=lead, state=ConsentState.CONFIRMED, source=ConsentSource.API)
    drain()
    assert members() == [lead.pk]
    consent_set(lead=lead, state=ConsentState.WITHDRAWN, source=ConsentSource.UNSUBSCRIBE)
    drain()
    assert members() == []


def test_the_rule_in_words_and_a_bad_value():
    rule = {"field": "consent_state", "op": "in", "value": ["confirmed", "pending"]}

    assert (
        rule_words(rule, Names())
        == "Marketing consent is one of Confirmed and Pending confirmation"
    )
    with pytest.raises(ConditionError):
        validate({"all": [{"field": "consent_state", "op": "is", "value": "maybe"}]})

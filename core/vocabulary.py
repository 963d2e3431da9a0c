"""Words every layer shares: the event types by what they mean, and the grades.

One constant per meaning. An event type can be in several sets (an opened email
is inbound, is something the lead did, and can be counted by a segment rule).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

# Sent by a client or a provider; the rest are emitted by Leadflow itself.
INBOUND_TYPES = frozenset(
    {
        "identify",
        "track",
        "page",
        "screen",
        "group",
        "alias",
        "form.submitted",
        "email.delivered",
        "email.opened",
        "email.clicked",
        "email.replied",
        "email.bounced",
        "email.complained",
        "email.unsubscribed",
    }
)

# Something the lead did: these move the lead's last activity.
LEAD_ACTIVITY_TYPES = frozenset(
    {
        "identify",
        "track",
        "page",
        "screen",
        "form.submitted",
        "email.opened",
        "email.clicked",
        "email.replied",
    }
)

# What a segment's activity rule can count, in the order the editor offers them.
COUNTABLE_TYPES = (
    "track",
    "page",
    "screen",
    "form.submitted",
    "email.delivered",
    "email.opened",
    "email.clicked",
    "email.replied",
    "email.bounced",
    "email.complained",
    "email.unsubscribed",
)

# A deal with a lead opened, won or lost (``leads.services.outcomes``): derived
# events with the deal's value and currency, dated when it happened.
OPPORTUNITY_OPENED = "opportunity.opened"
OPPORTUNITY_WON = "opportunity.won"
OPPORTUNITY_LOST = "opportunity.lost"
OPPORTUNITY_TYPES = (OPPORTUNITY_OPENED, OPPORTUNITY_WON, OPPORTUNITY_LOST)

# A lead's marketing consent changed (``leads.services.consent``): a derived event
# with from, to and source; the evidence is its ``ConsentRecord``. Not countable
# by a segment's activity rule: what matters is the state the lead is in, not how
# often it moved (a flow can trigger on it; the emails app sends the double
# opt-in email when it becomes pending).
CONSENT_CHANGED = "consent.changed"


class Grade(models.TextChoices):
    """How hot a lead is, from its score (scoring decides the thresholds)."""

    COLD = "cold", _("Cold")
    WARM = "warm", _("Warm")
    HOT = "hot", _("Hot")


class FitGrade(models.TextChoices):
    """How well a lead fits the ideal customer (the fit category's points)."""

    A = "A", _("A: great fit")
    B = "B", _("B: good fit")
    C = "C", _("C: weak fit")
    D = "D", _("D: no fit")


class EngagementGrade(models.TextChoices):
    """How engaged a lead is (the engagement category's points)."""

    ONE = "1", _("1: very engaged")
    TWO = "2", _("2: engaged")
    THREE = "3", _("3: little engaged")
    FOUR = "4", _("4: not engaged")

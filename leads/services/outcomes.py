"""Opportunities: a deal with a lead opened, won or lost. Each moves the lead's
lifecycle stage (through ``lead_update``, so the stage is dated and flows see the
change) and emits ``opportunity.opened`` / ``opportunity.won`` /
``opportunity.lost`` with the deal's value and currency, dated when it
happened."""

from __future__ import annotations

import datetime as dt
import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from core.vocabulary import OPPORTUNITY_LOST, OPPORTUNITY_OPENED, OPPORTUNITY_WON
from leads.models import Event, Lead, Opportunity, OpportunityStatus, Stage
from leads.services.events import event_derive
from leads.services.leads import STAGE_DATE_FIELDS, lead_update

logger = logging.getLogger(__name__)

DEFAULT_CURRENCY = "EUR"
CURRENCY_CODE = re.compile(r"[A-Z]{3}")
# The column holds 14 digits, 2 after the point.
MAX_VALUE = Decimal("999999999999.99")
# Stages an opened opportunity does not move a lead back from: a customer's
# new deal is an upsell, not a new prospect.
PAST_OPPORTUNITY = frozenset({Stage.OPPORTUNITY, Stage.CUSTOMER})


def opportunity_terms_clean(*, value: Any, currency: Any) -> tuple[Decimal, str]:
    """A deal's value (a number, at least 0, cents at most) and currency (an ISO
    4217 code: three letters, upper-cased); raises ``ValidationError`` keyed by
    ``value`` / ``currency``. The pages and the API clean with it."""
    errors: dict[str, str] = {}
    amount = Decimal(0)
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        errors["value"] = gettext("Enter the value as a number, e.g. 12500 or 12500.50.")
    else:
        if not amount.is_finite():
            errors["value"] = gettext("Enter the value as a number, e.g. 12500 or 12500.50.")
        elif amount < 0:
            errors["value"] = gettext("The value cannot be negative.")
        elif amount > MAX_VALUE:
            errors["value"] = gettext("The value is too large.")
        elif amount != amount.quantize(Decimal("0.01")):
            errors["value"] = gettext("The value has at most two decimal places.")
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if not CURRENCY_CODE.fullmatch(code):
        errors["currency"] = gettext("Enter a currency as its three-letter code, e.g. EUR or USD.")
    if errors:
        raise ValidationError({field: [message] for field, message in errors.items()})
    return amount.quantize(Decimal("0.01")), code


def _properties(opportunity: Opportunity, **extra: Any) -> dict[str, Any]:
    return {
        "opportunity_id": opportunity.pk,
        "name": opportunity.name,
        "value": float(opportunity.value),
        "currency": opportunity.currency,
        **extra,
    }


def _depth(cause: Event | None) -> int:
    return cause.depth + 1 if cause is not None else 0


def _locked_lead(pk: int) -> Lead:
    return Lead.objects.select_for_update(of=("self",)).get(pk=pk)


def _sync(lead: Lead, locked: Lead) -> None:
    """Give the caller's copy of the lead what the service changed."""
    for field in ("stage", "qualified_score", *STAGE_DATE_FIELDS.values()):
        setattr(lead, field, getattr(locked, field))


def _sync_lead_of(opportunity: Opportunity, locked: Lead) -> None:
    if Opportunity.lead.is_cached(opportunity):
        _sync(opportunity.lead, locked)
    else:
        opportunity.lead = locked


@transaction.atomic
def opportunity_open(
    *,
    lead: Lead,
    value: Any,
    currency: str = DEFAULT_CURRENCY,
    name: str = "",
    user: User | None,
    opened_at: dt.datetime | None = None,
    source_key: str | None = None,
    cause: Event | None = None,
) -> Opportunity:
    """Open a deal with ``lead`` worth ``value`` ``currency``, and move the lead
    to the opportunity stage unless it is one or a customer already.

    ``source_key`` (``step:<id>`` for a flow) makes it once-only: asking again
    returns the opportunity opened the first time. ``user`` None: a flow or an
    API key. Raises ``ValidationError`` for a bad value or currency."""
    amount, code = opportunity_terms_clean(value=value, currency=currency)
    if source_key is not None:
        existing = Opportunity.objects.filter(source_key=source_key).first()
        if existing is not None:
            return existing
    at = opened_at or timezone.now()
    locked = _locked_lead(lead.pk)
    try:
        with transaction.atomic():
            opportunity = Opportunity.objects.create(
                lead=locked,
                name=name.strip()[:200],
                value=amount,
                currency=code,
                opened_at=at,
                created_by=user,
                source_key=source_key,
            )
    except IntegrityError:
        # Another run of the same step won the race; its opportunity stands.
        return Opportunity.objects.get(source_key=source_key)
    event_derive(
        lead=locked,
        type=OPPORTUNITY_OPENED,
        name=opportunity.name,
        properties=_properties(opportunity),
        key=f"{OPPORTUNITY_OPENED}:{opportunity.pk}",
        depth=_depth(cause),
        occurred_at=at,
    )
    if locked.stage not in PAST_OPPORTUNITY:
        lead_update(lead=locked, changes={"stage": Stage.OPPORTUNITY}, cause=cause, at=at)
    _sync(lead, locked)
    logger.info("opportunity %s opened for lead %s", opportunity.pk, locked.pk)
    return opportunity


def _closing(opportunity: Opportunity, closed_at: dt.datetime | None) -> tuple[Lead, dt.datetime]:
    """Lock the lead, then the opportunity (the pipeline's order); refuse one
    that is not open or a close before it opened."""
    locked = _locked_lead(opportunity.lead_id)
    row = Opportunity.objects.select_for_update().get(pk=opportunity.pk)
    if row.status != OpportunityStatus.OPEN:
        raise ValidationError(
            gettext("This opportunity is already %(status)s.")
            % {"status": row.get_status_display().lower()},
            code="closed",
        )
    at = closed_at or timezone.now()
    if at < row.opened_at:
        raise ValidationError(
            {"closed_at": [gettext("An opportunity cannot close before it was opened.")]}
        )
    return locked, at


@transaction.atomic
def opportunity_win(
    *,
    opportunity: Opportunity,
    user: User | None,
    closed_at: dt.datetime | None = None,
    cause: Event | None = None,
) -> Opportunity:
    """Mark an open deal won and make its lead a customer (dated ``closed_at``,
    now by default). A deal already won or lost is refused (code ``closed``)."""
    locked, at = _closing(opportunity, closed_at)
    Opportunity.objects.filter(pk=opportunity.pk).update(status=OpportunityStatus.WON, closed_at=at)
    opportunity.status, opportunity.closed_at = OpportunityStatus.WON, at
    event_derive(
        lead=locked,
        type=OPPORTUNITY_WON,
        name=opportunity.name,
        properties=_properties(opportunity),
        key=f"{OPPORTUNITY_WON}:{opportunity.pk}",
        depth=_depth(cause),
        occurred_at=at,
    )
    if locked.stage != Stage.CUSTOMER:
        lead_update(lead=locked, changes={"stage": Stage.CUSTOMER}, cause=cause, at=at)
    _sync_lead_of(opportunity, locked)
    logger.info("opportunity %s won by %s", opportunity.pk, user.pk if user else "a key or flow")
    return opportunity


@transaction.atomic
def opportunity_lose(
    *,
    opportunity: Opportunity,
    reason: str,
    user: User | None,
    closed_at: dt.datetime | None = None,
    cause: Event | None = None,
) -> Opportunity:
    """Mark an open deal lost, with why. Its lead becomes lost when it has no
    other open deal and is not a customer already (a lost upsell leaves a
    customer a customer)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [gettext("Say why the opportunity was lost.")]})
    locked, at = _closing(opportunity, closed_at)
    Opportunity.objects.filter(pk=opportunity.pk).update(
        status=OpportunityStatus.LOST, closed_at=at, lost_reason=reason[:255]
    )
    opportunity.status, opportunity.closed_at = OpportunityStatus.LOST, at
    opportunity.lost_reason = reason[:255]
    event_derive(
        lead=locked,
        type=OPPORTUNITY_LOST,
        name=opportunity.name,
        properties=_properties(opportunity, reason=opportunity.lost_reason),
        key=f"{OPPORTUNITY_LOST}:{opportunity.pk}",
        depth=_depth(cause),
        occurred_at=at,
    )
    others_open = (
        Opportunity.objects.filter(lead_id=locked.pk, status=OpportunityStatus.OPEN)
        .exclude(pk=opportunity.pk)
        .exists()
    )
    if not others_open and locked.stage not in (Stage.CUSTOMER, Stage.LOST):
        lead_update(lead=locked, changes={"stage": Stage.LOST}, cause=cause, at=at)
    _sync_lead_of(opportunity, locked)
    logger.info("opportunity %s lost by %s", opportunity.pk, user.pk if user else "a key or flow")
    return opportunity

"""A lead's marketing consent: its state, the evidence of every change, and the
rules of who may move it where.

The rules (``consent_transition``, pure, shared by every source):

- Withdrawing is always allowed, from any source that can speak for the person
  (not unverified ingestion, below): saying no must never fail.
- ``withdrawn`` is left only by the person's own act (a form they submitted, the
  confirmation link of a request made after it) or by an admin. An import or the
  API cannot lift it: a list bought or synced later must not overrule a "no".
- ``confirmed`` stays confirmed when a form, import or the API says "pending"
  again: a second sign-up is no reason to ask again (or to mail again).
- ``pending`` again on a pending lead is a new request (a new record, a new
  confirmation email) only once the last one is a day old: the person who lost
  the email can ask again, a script submitting a form cannot flood an inbox.
- A confirmation link confirms only a pending lead.
- ``unknown`` (forgetting what we knew) is a person's correction: a user only.
- Unverified ingestion (a public write key) may only ask for ``pending`` (which
  sends the confirmation email, so the person decides): anyone holding the
  website's key could otherwise confirm anybody, or unsubscribe a whole list
  (the same reason an ingest key cannot send ``email.unsubscribed``).

Every change is one ``ConsentRecord`` and one derived ``consent.changed`` event
(from, to, source), written with the lead's fields in one transaction. The
``emails`` app reacts to a change to ``pending`` with the double opt-in email.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.roles import Role
from core.vocabulary import CONSENT_CHANGED
from leads.models import ConsentRecord, ConsentSource, ConsentState, Event, Lead
from leads.roles import user_role
from leads.services.events import event_derive
from leads.services.leads import lead_update

# A new "pending" on a pending lead is a new request only after this long.
PENDING_RENEW_AFTER = dt.timedelta(days=1)
WORDING_LIMIT = 5000
USER_AGENT_LIMIT = 400
DETAIL_LIMIT = 200


class Outcome(enum.Enum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


@dataclass(frozen=True)
class Transition:
    outcome: Outcome
    # Why, in words, when unchanged or refused.
    reason: str = ""


class ConsentRefused(Exception):
    """The change is not allowed by the consent rules; ``message`` says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def consent_transition(
    *,
    current: str,
    new: str,
    source: str,
    admin: bool = False,
    changed_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
    restricted: bool = False,
) -> Transition:
    """Whether a lead whose consent is ``current`` (since ``changed_at``) may
    become ``new`` from ``source``. ``admin``: asked by an admin user;
    ``restricted``: from unverified ingestion. See the module's rules."""
    if restricted and new != ConsentState.PENDING:
        return Transition(
            Outcome.REFUSED, _("unverified data can only ask for consent, not set it")
        )
    if new == ConsentState.WITHDRAWN:
        if current == ConsentState.WITHDRAWN:
            return Transition(Outcome.UNCHANGED, _("consent is withdrawn already"))
        return Transition(Outcome.CHANGED)
    refused = _refusal(current=current, new=new, source=source, admin=admin)
    if refused:
        return Transition(Outcome.REFUSED, refused)
    if current == ConsentState.CONFIRMED and new == ConsentState.PENDING:
        return Transition(Outcome.UNCHANGED, _("consent is confirmed already"))
    if current == new:
        if new == ConsentState.PENDING and source != ConsentSource.USER:
            now = now or timezone.now()
            if changed_at is None or now - changed_at >= PENDING_RENEW_AFTER:
                return Transition(Outcome.CHANGED)
        return Transition(Outcome.UNCHANGED, _("consent is %(state)s already") % {"state": new})
    return Transition(Outcome.CHANGED)


def _refusal(*, current: str, new: str, source: str, admin: bool) -> str:
    """Why a change to ``new`` (not a withdrawal) is not allowed; "" if it is."""
    if source == ConsentSource.CONFIRMATION:
        if new != ConsentState.CONFIRMED or current != ConsentState.PENDING:
            return _("there is no pending request to confirm")
        return ""
    if new == ConsentState.UNKNOWN and source != ConsentSource.USER:
        return _("only a user can set consent back to unknown")
    if current == ConsentState.WITHDRAWN:
        by_person = source == ConsentSource.FORM and new == ConsentState.PENDING
        by_admin = source == ConsentSource.USER and admin
        if not (by_person or by_admin):
            return _(
                "the person withdrew consent; only their own new sign-up "
                "or an admin can change that"
            )
    return ""


def _ip(value: str | None) -> str | None:
    """A valid IP address or None: the column takes nothing else, and a
    forwarded header may carry anything."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def is_admin(user: Any) -> bool:
    return user_role(user) == Role.ADMIN


def consent_set(
    *,
    lead: Lead,
    state: str,
    source: str,
    source_detail: str = "",
    occurred_at: dt.datetime | None = None,
    ip_address: str | None = None,
    user_agent: str = "",
    wording: str = "",
    user: Any = None,
    cause: Event | None = None,
    restricted: bool = False,
) -> ConsentRecord | None:
    """Move ``lead``'s marketing consent to ``state``, with its evidence: the
    lead's fields, a ``ConsentRecord`` and a ``consent.changed`` event in one
    transaction, under the lead's row lock. Returns the record, or None when
    nothing changed (the same state, or confirmed asked to be pending again);
    raises ``ConsentRefused`` when the rules do not allow it. ``cause``: the
    event this comes from (a form, an identify, an unsubscribe); ``user``: who
    set it on the profile or through the API (an admin may lift a withdrawal);
    ``restricted``: from unverified ingestion."""
    if state not in ConsentState.values:
        raise ConsentRefused(_("unknown consent state %(state)s") % {"state": state})
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Lead.objects.select_for_update()
            .only("id", "consent_state", "consent_changed_at", "unsubscribed")
            .get(pk=lead.pk)
        )
        transition = consent_transition(
            current=locked.consent_state,
            new=state,
            source=source,
            admin=is_admin(user),
            changed_at=locked.consent_changed_at,
            now=now,
            restricted=restricted,
        )
        if transition.outcome is Outcome.REFUSED:
            raise ConsentRefused(transition.reason)
        if transition.outcome is Outcome.UNCHANGED:
            return None
        previous = locked.consent_state
        record = ConsentRecord.objects.create(
            lead_id=lead.pk,
            state=state,
            source=source,
            source_detail=source_detail[:DETAIL_LIMIT],
            occurred_at=occurred_at or now,
            ip_address=_ip(ip_address),
            user_agent=user_agent[:USER_AGENT_LIMIT],
            wording=wording[:WORDING_LIMIT],
            created_by=user if getattr(user, "pk", None) else None,
        )
        Lead.objects.filter(pk=lead.pk).update(
            consent_state=state, consent_changed_at=now, updated_at=now
        )
        lead.consent_state = state
        lead.consent_changed_at = now
        depth = cause.depth + 1 if cause is not None else 0
        # A confirmed opt-in from the person (or an admin's decision) is a new
        # "yes": an earlier unsubscribe no longer stands.
        if (
            state == ConsentState.CONFIRMED
            and locked.unsubscribed
            and source in (ConsentSource.CONFIRMATION, ConsentSource.USER)
        ):
            lead.unsubscribed = True
            lead_update(lead=lead, changes={"unsubscribed": False}, cause=cause)
        event_derive(
            lead=lead,
            type=CONSENT_CHANGED,
            name=state,
            key=f"{CONSENT_CHANGED}:{record.pk}",
            properties={
                "from": previous,
                "to": state,
                "source": source,
                "record": record.pk,
            },
            depth=depth,
            occurred_at=record.occurred_at,
        )
    return record


def consent_trail(*, lead: Lead) -> list[ConsentRecord]:
    """The evidence of every change of the lead's consent, oldest first."""
    return list(
        ConsentRecord.objects.filter(lead=lead)
        .select_related("created_by")
        .order_by("occurred_at", "id")
    )

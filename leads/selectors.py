"""Reads, scoped to what the asking user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from leads.models import Event, Lead, Role
from leads.roles import user_role


def leads_visible_to(user: Any) -> QuerySet[Lead]:
    """Admins and marketers see every lead; sales reps their own and unassigned ones."""
    leads = Lead.objects.all()
    role = user_role(user)
    if role in (Role.ADMIN, Role.MARKETER):
        return leads
    if role == Role.SALES:
        return leads.filter(Q(owner=user) | Q(owner__isnull=True))
    return leads.none()


def events_visible_to(user: Any) -> QuerySet[Event]:
    role = user_role(user)
    events = Event.objects.all()
    if role in (Role.ADMIN, Role.MARKETER):
        return events
    if role == Role.SALES:
        return events.filter(Q(lead__owner=user) | Q(lead__owner__isnull=True, lead__isnull=False))
    return events.none()


def lead_search(leads: QuerySet[Lead], text: str) -> QuerySet[Lead]:
    text = text.strip()
    if not text:
        return leads
    q = Q()
    for word in text.split()[:5]:
        q &= (
            Q(email__icontains=word)
            | Q(first_name__icontains=word)
            | Q(last_name__icontains=word)
            | Q(company_name__icontains=word)
        )
    return leads.filter(q)


def user_language(user: Any) -> str:
    """The language a user chose for their pages, or "" for the browser's.
    Reads the preference joined to the user (see ``PreferenceModelBackend``)."""
    if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return ""
    preference = getattr(user, "preference", None)
    return preference.language if preference is not None else ""

"""Placeholder of the unsubscribe links until the consent pages land."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

from leads.models import Lead


def unsubscribe_url(*, lead: Lead, send_key: str = "") -> str:
    token = signing.dumps({"l": lead.pk, "k": send_key}, salt="emails.unsubscribe")
    return f"{settings.SITE_URL}/e/u/{token}/"

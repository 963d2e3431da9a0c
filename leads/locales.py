"""A lead's language and time zone as clients send them: "de-DE" or "de_AT"
is German when German is one of the site's languages (``settings.LANGUAGES``),
a time zone is an IANA name ("Europe/Berlin"). One rule for Segment traits,
the API, imports and the lead's profile."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django.conf import settings


def language_of(value: Any) -> str | None:
    """The site's language code ``value`` names ("de" for "de-DE"); None if none."""
    if not isinstance(value, str):
        return None
    code = value.strip().replace("_", "-").split("-")[0].lower()
    return code if code in language_codes() else None


def language_codes() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


@cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def time_zone_of(value: Any) -> str | None:
    """The IANA time zone ``value`` names, spelled as IANA does; None if none."""
    if not isinstance(value, str):
        return None
    return _zones().get(value.strip().lower())

"""Where a lead came from, read from its first page view: the campaign (UTM)
fields Segment puts in ``context.campaign`` (or the page URL's ``utm_*``
parameters), else the referrer's host. Pure functions: the pipeline
(``leads.services.apply``) decides when to ask."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from leads.models import LeadSource

DETAIL_LENGTH = 200

# utm_medium as marketers write it (lower-cased) → channel.
MEDIUM_SOURCES: dict[str, LeadSource] = {
    **dict.fromkeys(
        (
            "cpc",
            "ppc",
            "paid",
            "paidsearch",
            "paid_search",
            "paid-search",
            "paid_social",
            "paid-social",
            "paidsocial",
            "cpm",
            "cpv",
            "display",
            "banner",
            "retargeting",
            "affiliate",
        ),
        LeadSource.PAID,
    ),
    **dict.fromkeys(("email", "e-mail", "newsletter", "mail"), LeadSource.EMAIL),
    **dict.fromkeys(
        ("social", "social-network", "social_network", "social-media", "sm", "organic_social"),
        LeadSource.SOCIAL,
    ),
    **dict.fromkeys(("organic", "seo"), LeadSource.ORGANIC),
    **dict.fromkeys(("referral", "partner"), LeadSource.REFERRAL),
    **dict.fromkeys(("event", "fair", "tradeshow", "trade-show", "offline"), LeadSource.EVENT),
}
# Hosts (a registrable name's first label: "google" for www.google.de) that are
# search engines or social networks; any other referrer is a referral.
SEARCH_ENGINES = frozenset(
    {"google", "bing", "duckduckgo", "yahoo", "ecosia", "baidu", "yandex", "qwant", "startpage"}
)
SOCIAL_NETWORKS = frozenset(
    {
        "facebook",
        "instagram",
        "linkedin",
        "lnkd",
        "twitter",
        "t",
        "x",
        "xing",
        "youtube",
        "reddit",
        "pinterest",
        "tiktok",
        "mastodon",
    }
)
# Second-level labels under which a country's names are registered (example.co.uk).
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu"})


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.lower().removeprefix("www.")


def _site_name(host: str) -> str:
    """The label that names the site: "google" for google.co.uk and www.google.de."""
    labels = host.split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else host


def _campaign(properties: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, str]:
    """The campaign fields: Segment's ``context.campaign``, else the page URL's
    ``utm_*`` parameters."""
    raw = context.get("campaign")
    if isinstance(raw, Mapping):
        found = {key: _text(raw.get(key)) for key in ("source", "medium", "name")}
        if any(found.values()):
            return found
    url = _text(properties.get("url"))
    if not url:
        return {}
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return {}
    found = {key: _text((query.get(f"utm_{key}") or [""])[0]) for key in ("source", "medium")}
    found["name"] = _text((query.get("utm_campaign") or [""])[0])
    return found if any(found.values()) else {}


def _by_name(name: str) -> LeadSource | None:
    site = _site_name(name.lower()) if "." in name else name.lower()
    if site in SEARCH_ENGINES:
        return LeadSource.ORGANIC
    if site in SOCIAL_NETWORKS:
        return LeadSource.SOCIAL
    return None


def source_from_page(
    *, properties: Mapping[str, Any], context: Mapping[str, Any]
) -> tuple[str, str]:
    """(source, detail) of a lead whose first page view this is.

    With campaign fields, the medium decides (cpc, ppc, paid … → paid; email →
    email; social → social); a campaign without a known medium is told by its
    source's name (google → organic, linkedin → social), else "other". Without,
    the referrer's host: a search engine → organic, a social network → social,
    the site itself or none → direct, any other → referral. The detail says
    what it was read from ("google / cpc / spring", the referrer's host)."""
    campaign = _campaign(properties, context)
    if campaign:
        medium = campaign.get("medium", "").lower()
        source = MEDIUM_SOURCES.get(medium) or _by_name(campaign.get("source", ""))
        detail = " / ".join(v for v in (campaign.get(k) for k in ("source", "medium", "name")) if v)
        return str(source or LeadSource.OTHER), detail[:DETAIL_LENGTH]
    referrer = _host(_text(properties.get("referrer")) or _text(_page(context).get("referrer")))
    own = _host(_text(properties.get("url")) or _text(_page(context).get("url")))
    if not referrer or referrer == own:
        return str(LeadSource.DIRECT), ""
    return str(_by_name(referrer) or LeadSource.REFERRAL), referrer[:DETAIL_LENGTH]


def _page(context: Mapping[str, Any]) -> Mapping[str, Any]:
    page = context.get("page")
    return page if isinstance(page, Mapping) else {}

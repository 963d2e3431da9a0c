"""What each inbound event does to its lead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from core.vocabulary import LEAD_ACTIVITY_TYPES
from leads.locales import language_of, time_zone_of
from leads.models import ConsentSource, ConsentState, Event, Lead, LeadSource
from leads.services.consent import ConsentRefused, consent_set
from leads.services.fields import FieldValueError, custom_definitions, custom_value_clean
from leads.services.ingest import ingest_restricted
from leads.services.leads import lead_touch, lead_update
from leads.sources import DETAIL_LENGTH, source_from_page

logger = logging.getLogger(__name__)

TEXT_LIMITS = {
    f.name: f.max_length
    for f in Lead._meta.concrete_fields
    if getattr(f, "max_length", None) and f.name not in ("email", "external_id")
}
MAX_COMPANY_SIZE = 2_147_483_647  # the column's range on every backend
# Segment's reserved traits and the common spellings of ours, mapped to Lead fields.
TRAIT_ALIASES = {
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "phone": "phone",
    "title": "job_title",
    "job_title": "job_title",
    "jobTitle": "job_title",
    "company_name": "company_name",
    "companyName": "company_name",
    "company_size": "company_size",
    "companySize": "company_size",
    "employees": "company_size",
    "industry": "industry",
    "country": "country",
    "city": "city",
}
# Keys that identify rather than describe; handled by lead resolution.
IDENTITY_TRAITS = {"email", "userId", "user_id", "anonymousId", "id"}
# The lead's marketing consent and the sentence it agreed to: not fields, they
# move by the consent rules (``leads.services.consent``).
CONSENT_TRAIT = "marketing_consent"
CONSENT_WORDING_TRAIT = "marketing_consent_wording"
# Segment's reserved traits with no standard field of ours: kept under these
# names, so a custom field with that key (``website``, ``signed_up_at`` …) takes
# them, and the raw traits keep them otherwise.
TRAIT_TO_CUSTOM = {
    "website": "website",
    "createdAt": "signed_up_at",
    "created_at": "signed_up_at",
}
ADDRESS_TO_CUSTOM = {"street": "street", "postalCode": "postal_code", "state": "state"}
TAG_LIMIT = 100


def traits_to_changes(
    traits: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split Segment traits into (standard field changes, custom values, raw bag).

    Nothing is an error here: a value that does not fit its field goes to the raw
    bag instead, so no trait a client sent is ever lost.
    """
    raw: dict[str, Any] = {}
    candidates: dict[str, Any] = {}
    for key, value in traits.items():
        # Identity traits are handled by lead resolution; tags are given to
        # lead_update on their own (see ``traits_tags``).
        if key in IDENTITY_TRAITS or key == CONSENT_TRAIT or key == "tags":
            continue
        if key in TRAIT_ALIASES:
            candidates[TRAIT_ALIASES[key]] = value
        elif key in TRAIT_TO_CUSTOM:
            raw[TRAIT_TO_CUSTOM[key]] = value
        else:
            sort_structured = STRUCTURED_TRAITS.get(key)
            if sort_structured is None or not sort_structured(value, candidates, raw):
                raw[key] = value
    # Explicit first/last names win over a split "name".
    for key in ("firstName", "first_name", "lastName", "last_name"):
        if key in traits and isinstance(traits[key], str):
            candidates[TRAIT_ALIASES[key]] = traits[key]
    standard = _standard_or_raw(candidates, raw)
    custom = _custom_from_raw(raw) if raw else {}
    return standard, custom, raw


def _name_trait(value: Any, candidates: dict[str, Any], raw: dict[str, Any]) -> bool:
    """``name`` as text: first and last name, unless the traits give them."""
    if not isinstance(value, str):
        return False
    first, _, last = value.strip().partition(" ")
    candidates.setdefault("first_name", first)
    if last:
        candidates.setdefault("last_name", last.strip())
    return True


def _company_trait(value: Any, candidates: dict[str, Any], raw: dict[str, Any]) -> bool:
    """``company`` as a name, or as an object whose known keys are fields of ours
    (the rest stays raw)."""
    if isinstance(value, str):
        candidates["company_name"] = value
        return True
    if not isinstance(value, dict):
        return False
    rest = dict(value)
    for sub, field in (
        ("name", "company_name"),
        ("employee_count", "company_size"),
        ("employees", "company_size"),
        ("industry", "industry"),
    ):
        if sub in rest:
            candidates[field] = rest.pop(sub)
    if rest:
        raw["company"] = rest
    return True


def _address_trait(value: Any, candidates: dict[str, Any], raw: dict[str, Any]) -> bool:
    """``address`` as an object: city and country are fields of ours, the street,
    postal code and state raw traits of their own (the rest stays raw)."""
    if not isinstance(value, dict):
        return False
    rest = dict(value)
    for sub in ("city", "country"):
        if sub in rest:
            candidates[sub] = rest.pop(sub)
    for sub, name in ADDRESS_TO_CUSTOM.items():
        if sub in rest:
            raw[name] = rest.pop(sub)
    if rest:
        raw["address"] = rest
    return True


def _language_trait(value: Any, candidates: dict[str, Any], raw: dict[str, Any]) -> bool:
    """``language`` or ``locale`` ("de-DE"): one of the site's languages."""
    code = language_of(value)
    if code is None:
        return False
    candidates["language"] = code
    return True


def _time_zone_trait(value: Any, candidates: dict[str, Any], raw: dict[str, Any]) -> bool:
    """``timezone``: an IANA time zone."""
    zone = time_zone_of(value)
    if zone is None:
        return False
    candidates["time_zone"] = zone
    return True


# Traits whose value is taken apart: each sorts its parts into the candidates for
# standard fields and the raw bag, and answers False when the value has a shape
# it does not know (the trait is then kept raw as it is).
STRUCTURED_TRAITS: dict[str, Callable[[Any, dict[str, Any], dict[str, Any]], bool]] = {
    "name": _name_trait,
    "company": _company_trait,
    "address": _address_trait,
    "language": _language_trait,
    "locale": _language_trait,
    "timezone": _time_zone_trait,
    "time_zone": _time_zone_trait,
    "timeZone": _time_zone_trait,
}


def _standard_or_raw(candidates: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The candidates that fit their standard field, cleaned; the others go to
    ``raw`` as they came."""
    standard: dict[str, Any] = {}
    for field, value in candidates.items():
        cleaned = _standard_clean(field, value)
        if cleaned is None:
            raw[field] = value
        else:
            standard[field] = cleaned
    return standard


def _custom_from_raw(raw: dict[str, Any]) -> dict[str, Any]:
    """The raw traits that are values of custom fields, taken out of ``raw``;
    a value the field refuses stays raw."""
    custom: dict[str, Any] = {}
    definitions = custom_definitions()
    for key in list(raw):
        definition = definitions.get(key)
        if definition is None:
            continue
        try:
            custom[key] = custom_value_clean(definition, raw[key], lenient=True)
        except FieldValueError:
            continue
        del raw[key]
    return custom


def traits_tags(traits: dict[str, Any]) -> tuple[list[str], Any]:
    """The ``tags`` trait as tag names to add (a list of names, or one string of
    comma-separated names), and what of it could not be a tag (kept as a raw
    trait), or None."""
    value = traits.get("tags")
    if value is None:
        return [], None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return [], value
    names: list[str] = []
    refused: list[Any] = []
    for item in items:
        name = item.strip() if isinstance(item, str) else None
        if name and len(name) <= TAG_LIMIT:
            names.append(name)
        elif name != "":
            refused.append(item)
    return names, refused or None


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def fill_only(
    *, lead: Lead, standard: dict[str, Any], custom: dict[str, Any], raw: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """What an unverified ingest key may change on a lead: the fields it has no
    value for. The key is public (a website snippet), so anyone could send an
    ``identify`` with a customer's email; filling blanks is harmless, rewriting
    a known person's name or company is not (see README, Sending data)."""
    return (
        {f: v for f, v in standard.items() if _is_empty(getattr(lead, f))},
        {k: v for k, v in custom.items() if _is_empty(lead.custom_fields.get(k))},
        {k: v for k, v in raw.items() if k not in lead.raw_traits},
    )


def _standard_clean(field: str, value: Any) -> Any:
    if field == "company_size":
        if isinstance(value, bool):
            return None
        number = None
        if isinstance(value, int) and value >= 0:
            number = value
        elif isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())
        return number if number is not None and number <= MAX_COMPANY_SIZE else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    limit = TEXT_LIMITS.get(field)
    if limit and len(value) > limit:
        return None
    return value


def event_apply(*, event: Event, lead: Lead, touched: bool = False) -> None:
    """Apply an event to its locked lead. Derived events change nothing here:
    segments and flows react to them. ``touched``: the lead's activity was
    moved already (by the statement that locked it)."""
    if event.type in LEAD_ACTIVITY_TYPES and not touched:
        lead_touch(lead=lead, at=event.occurred_at)
    restricted = ingest_restricted(event)
    if event.type == "identify":
        _identify_apply(event=event, lead=lead, restricted=restricted)
    elif event.type == "group":
        _group_apply(event=event, lead=lead, restricted=restricted)
    elif event.type in ("email.unsubscribed", "email.complained"):
        _unsubscribe_apply(event=event, lead=lead)
    elif event.type == "email.bounced":
        _bounce_apply(event=event, lead=lead)
    elif event.type == "form.submitted":
        _form_consent_apply(event=event, lead=lead, restricted=restricted)
    if event.type in SOURCE_TYPES and not lead.source:
        _source_apply(event=event, lead=lead)


def _unsubscribe_apply(*, event: Event, lead: Lead) -> None:
    """An unsubscribe or a spam complaint (from a provider, or from our own
    link): no more marketing email, and the consent is withdrawn with the
    evidence (our own link withdrew it already, so that changes nothing)."""
    if not lead.unsubscribed:
        lead_update(lead=lead, changes={"unsubscribed": True}, cause=event)
    if lead.consent_state != ConsentState.WITHDRAWN:
        consent_set(
            lead=lead,
            state=ConsentState.WITHDRAWN,
            source=ConsentSource.UNSUBSCRIBE,
            source_detail=_provider_detail(event),
            occurred_at=event.occurred_at,
            cause=event,
        )


def _bounce_apply(*, event: Event, lead: Lead) -> None:
    """A hard bounce of the lead's address (``bounce_type`` "hard", see
    ``email_events.bounce_type``): no more marketing email to it. A soft one
    (a full mailbox) changes nothing, nor a bounce of an address the lead no
    longer has."""
    properties = event.properties or {}
    if properties.get("bounce_type") != "hard" or lead.email_bounced_at is not None:
        return
    address = str(properties.get("email") or event.email or "").lower()
    if address and address != lead.email:
        return
    lead_update(lead=lead, changes={"email_bounced_at": event.occurred_at}, cause=event)


def consent_state_read(value: Any) -> str | None:
    """A consent trait or property as a state: a state's key ("pending",
    "confirmed", "withdrawn"), or true (asks: pending) / false (withdrawn).
    None for anything else."""
    if value is True:
        return str(ConsentState.PENDING)
    if value is False:
        return str(ConsentState.WITHDRAWN)
    if isinstance(value, str) and value.strip().lower() in (
        ConsentState.PENDING,
        ConsentState.CONFIRMED,
        ConsentState.WITHDRAWN,
    ):
        return value.strip().lower()
    return None


def _consent_apply(
    *, event: Event, lead: Lead, state: str, source: str, detail: str, restricted: bool
) -> None:
    """Move the lead's consent as an event asks, with the event's context (IP,
    browser) and wording as evidence; what the rules refuse is logged."""
    properties = event.properties or {}
    context = event.context if isinstance(event.context, dict) else {}
    if restricted and state == ConsentState.CONFIRMED:
        # Anyone holding the website's key could send this: ask the person.
        state = str(ConsentState.PENDING)
    wording = properties.get(CONSENT_WORDING_TRAIT) or properties.get("consent_wording")
    try:
        consent_set(
            lead=lead,
            state=state,
            source=source,
            source_detail=detail,
            occurred_at=event.occurred_at,
            ip_address=str(context.get("ip") or "") or None,
            user_agent=str(context.get("userAgent") or ""),
            wording=str(wording) if isinstance(wording, str) else "",
            cause=event,
            restricted=restricted,
        )
    except ConsentRefused as refused:
        logger.info("consent of lead %s kept: %s", lead.pk, refused.message)


def _form_consent_apply(*, event: Event, lead: Lead, restricted: bool) -> None:
    """A form whose ``marketing_consent`` box was ticked asks for consent
    (pending: the double opt-in email confirms it); an unticked box says
    nothing (it is no withdrawal)."""
    value = (event.properties or {}).get(CONSENT_TRAIT)
    if value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "on")):
        _consent_apply(
            event=event,
            lead=lead,
            state=str(ConsentState.PENDING),
            source=ConsentSource.FORM,
            detail=event.name[:DETAIL_LENGTH],
            restricted=restricted,
        )


def _provider_detail(event: Event) -> str:
    # Stored as it came (type and sender), not in words of one language.
    return f"{event.type} ({event.source})"


# The events that tell where a lead came from; the first one a lead without a
# source gets decides it (a source set by hand, an import or the API stays).
SOURCE_TYPES = ("page", "form.submitted")


def _source_apply(*, event: Event, lead: Lead) -> None:
    """Set the lead's source, once: from a page view's campaign fields or
    referrer, or "form" (the form's name as detail) for a form submission."""
    if event.type == "form.submitted":
        source, detail = str(LeadSource.FORM), event.name[:DETAIL_LENGTH]
    else:
        context = event.context if isinstance(event.context, dict) else {}
        source, detail = source_from_page(properties=event.properties or {}, context=context)
    lead_update(lead=lead, changes={"source": source, "source_detail": detail}, cause=event)


def _identify_apply(*, event: Event, lead: Lead, restricted: bool) -> None:
    """An ``identify``: its traits become the lead's fields, custom values, raw
    traits and tags."""
    traits = event.properties or {}
    standard, custom, raw = traits_to_changes(traits)
    tags, refused_tags = traits_tags(traits)
    if refused_tags is not None:
        raw["tags"] = refused_tags
    _trait_email(traits.get("email"), lead=lead, standard=standard, raw=raw)
    consent = consent_state_read(traits.get(CONSENT_TRAIT))
    if consent is None and CONSENT_TRAIT in traits:
        # No state we know: kept as it came.
        raw[CONSENT_TRAIT] = traits[CONSENT_TRAIT]
    if restricted:
        standard, custom, raw = fill_only(lead=lead, standard=standard, custom=custom, raw=raw)
    lead_update(
        lead=lead, changes=standard, custom=custom, raw_traits=raw, tags_add=tags, cause=event
    )
    if consent is not None:
        _consent_apply(
            event=event,
            lead=lead,
            state=consent,
            source=ConsentSource.API,
            detail="identify",
            restricted=restricted,
        )


def _trait_email(email: Any, *, lead: Lead, standard: dict[str, Any], raw: dict[str, Any]) -> None:
    """The ``email`` trait: a new valid address no other lead has becomes the
    lead's email; anything else is kept as a raw trait."""
    if isinstance(email, str) and email.strip() and email.strip().lower() != lead.email:
        try:
            validate_email(email.strip())
            standard["email"] = email.strip().lower()
        except ValidationError:
            raw["email"] = email
    if (
        "email" in standard
        and Lead.objects.filter(email=standard["email"]).exclude(pk=lead.pk).exists()
    ):
        # The address belongs to someone else already; keep it, don't steal it.
        raw["email"] = standard.pop("email")


def _group_apply(*, event: Event, lead: Lead, restricted: bool) -> None:
    """A ``group``: the company's traits become the lead's company fields."""
    traits = event.properties.get("traits") or {}
    company = {
        "company_name": traits.get("name"),
        "company_size": traits.get("employees", traits.get("employee_count")),
        "industry": traits.get("industry"),
    }
    changes = {}
    for field, value in company.items():
        if value is None:
            continue
        cleaned = _standard_clean(field, value)
        if cleaned is not None:
            changes[field] = cleaned
    if restricted:
        changes = fill_only(lead=lead, standard=changes, custom={}, raw={})[0]
    lead_update(lead=lead, changes=changes, cause=event)

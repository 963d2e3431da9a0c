"""A lead's language and time zone, set from Segment traits, through the API
and by an import: "de-DE" is German, a time zone is an IANA name; what is not
either is said clearly (API, import) or kept as a raw trait (events)."""

from __future__ import annotations

import io

import pytest

from leads.locales import language_of, time_zone_of
from leads.models import Lead
from leads.services.events import events_process
from leads.services.imports import import_guess_mapping, leads_import_stream
from tests.factories import EventFactory, LeadFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "expected"),
    [("de", "de"), ("de-DE", "de"), ("de_AT", "de"), (" EN-us ", "en"), ("fr-FR", None), (3, None)],
)
def test_language_of(value, expected):
    assert language_of(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("UTC", "UTC"),
        ("Mars/Olympus", None),
        ("../etc/passwd", None),
        ("", None),
        (None, None),
    ],
)
def test_time_zone_of(value, expected):
    assert time_zone_of(value) == expected


def identify(traits):
    event = EventFactory.create(
        lead=None, type="identify", name="", user_id="u-1", properties=traits
    )
    events_process(event_ids=[event.pk])
    return Lead.objects.get()


def test_identify_sets_language_from_locale_and_the_time_zone():
    lead = identify({"locale": "de-DE", "timezone": "Europe/Berlin"})
    assert (lead.language, lead.time_zone) == ("de", "Europe/Berlin")
    assert lead.raw_traits == {}

    lead = identify({"language": "en", "timezone": "America/New_York"})
    assert (lead.language, lead.time_zone) == ("en", "America/New_York")


def test_identify_keeps_what_is_no_language_or_zone_as_raw_traits():
    lead = identify({"language": "Klingon", "timezone": "Berlin time"})
    assert (lead.language, lead.time_zone) == ("", "")
    assert lead.raw_traits == {"language": "Klingon", "timezone": "Berlin time"}


def test_the_api_reads_and_writes_language_and_time_zone(marketer_api):
    created = marketer_api.post(
        "/api/v1/leads/",
        {"email": "jana@acme.example", "language": "de-DE", "time_zone": "europe/vienna"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert (created.data["language"], created.data["time_zone"]) == ("de", "Europe/Vienna")
    lead = Lead.objects.get()
    assert (lead.language, lead.time_zone) == ("de", "Europe/Vienna")

    changed = marketer_api.patch(
        f"/api/v1/leads/{lead.pk}/", {"language": "en", "time_zone": ""}, format="json"
    )
    assert changed.status_code == 200, changed.content
    lead.refresh_from_db()
    assert (lead.language, lead.time_zone) == ("en", "")
    assert marketer_api.get(f"/api/v1/leads/{lead.pk}/").data["language"] == "en"


def test_the_api_refuses_an_unknown_language_or_zone_and_changes_nothing(marketer_api):
    lead = LeadFactory.create(language="de", time_zone="Europe/Berlin")
    response = marketer_api.patch(
        f"/api/v1/leads/{lead.pk}/",
        {"language": "fr", "time_zone": "Europe/Atlantis"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "language": ["fr is not one of the languages here: en, de."],
        "time_zone": ['Europe/Atlantis is not a time zone; use an IANA name like "Europe/Berlin".'],
    }
    lead.refresh_from_db()
    assert (lead.language, lead.time_zone) == ("de", "Europe/Berlin")


def test_an_import_sets_language_and_time_zone_and_names_bad_cells():
    text = (
        "Email,Locale,Timezone\n"
        "ada@example.com,de-DE,Europe/Berlin\n"
        "bob@example.com,fr,UTC\n"
        "cy@example.com,en,Moon/Base\n"
        "di@example.com,,\n"
    )
    headers = text.splitlines()[0].split(",")
    mapping = import_guess_mapping(headers)
    assert mapping == {"Email": "email", "Locale": "language", "Timezone": "time_zone"}

    totals = leads_import_stream(stream=io.BytesIO(text.encode()), mapping=mapping)

    assert totals["errors"] == [
        {"row": 3, "error": "language: 'fr' is not one of en, de."},
        {"row": 4, "error": "time_zone: 'Moon/Base' is not a time zone like Europe/Berlin."},
    ]
    assert sorted(Lead.objects.values_list("email", "language", "time_zone")) == [
        ("ada@example.com", "de", "Europe/Berlin"),
        ("di@example.com", "", ""),
    ]

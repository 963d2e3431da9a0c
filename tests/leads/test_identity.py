"""Who an event is about: identifiers, anonymous ids, merges and aliases."""

import pytest

from leads.models import Event, Identity, Lead
from leads.services import events as event_services
from leads.services.events import events_process
from tests.factories import EventFactory, LeadFactory

pytestmark = pytest.mark.django_db


def send(type_="track", **kwargs):
    defaults = {"lead": None, "type": type_, "name": "E", "properties": {}}
    event = EventFactory.create(**{**defaults, **kwargs})
    events_process(event_ids=[event.pk])
    event.refresh_from_db()
    assert event.processed_at is not None, event.error
    return event


def test_user_id_is_attached_to_the_lead_known_by_email():
    lead = LeadFactory.create(email="a@example.com")
    send("identify", user_id="u1", email="a@example.com", properties={"email": "a@example.com"})
    send(user_id="u1")
    assert Lead.objects.count() == 1
    lead.refresh_from_db()
    assert lead.external_id == "u1"


def test_second_user_id_for_an_email_lead_is_kept_as_identity():
    lead = LeadFactory.create(email="a@example.com", external_id="old")
    send(user_id="new", email="a@example.com")
    event = send(user_id="new")
    assert event.lead_id == lead.pk
    assert Lead.objects.count() == 1


def test_shared_browser_does_not_overwrite_the_first_person():
    send("identify", user_id="v", anonymous_id="browser", properties={"firstName": "Vera"})
    send("identify", user_id="u", anonymous_id="browser", properties={"firstName": "Uli"})
    names = dict(Lead.objects.values_list("external_id", "first_name"))
    assert names == {"v": "Vera", "u": "Uli"}
    identity = Identity.objects.get(value="browser")
    assert identity.lead.external_id == "u"


def test_browser_of_a_known_person_used_by_a_new_person_without_user_id():
    send("identify", user_id="v", anonymous_id="browser", email="v@example.com")
    send(
        "identify",
        anonymous_id="browser",
        email="w@example.com",
        properties={"email": "w@example.com"},
    )
    emails = sorted(str(e) for e in Lead.objects.values_list("email", flat=True))
    assert emails == ["v@example.com", "w@example.com"]


def test_alias_before_any_traffic_links_the_old_id_later():
    send("alias", user_id="new-id", properties={"previous_id": "anon-early"})
    event = send(anonymous_id="anon-early")
    assert Lead.objects.count() == 1
    assert event.lead.external_id == "new-id"


def test_alias_keeps_the_old_user_id_findable():
    send("identify", user_id="old", email="o@example.com", properties={"email": "o@example.com"})
    send("alias", user_id="new", properties={"previous_id": "old"})
    lead = Lead.objects.get()
    assert lead.external_id == "new"
    assert send(user_id="old").lead_id == lead.pk
    assert Lead.objects.count() == 1


def test_merge_keeps_the_source_identifiers_as_identities():
    send("identify", user_id="a", email="a@example.com")
    send("identify", user_id="b", email="b@example.com")
    send("alias", user_id="b", properties={"previous_id": "a"})
    lead = Lead.objects.get()
    assert (lead.external_id, lead.email) == ("b", "b@example.com")
    assert send(email="a@example.com").lead_id == lead.pk
    assert send(user_id="a").lead_id == lead.pk
    assert Lead.objects.count() == 1
    assert Event.objects.filter(type="lead.merged").count() == 1


def test_lead_created_by_another_worker_meanwhile_is_found(monkeypatch):
    other = LeadFactory.create(external_id="u-race")
    real = event_services._by_user_id
    calls = {"n": 0}

    def lookup_misses_once(user_id):
        calls["n"] += 1
        # The first lookup happens before the other worker's commit.
        return None if calls["n"] == 1 else real(user_id)

    monkeypatch.setattr(event_services, "_by_user_id", lookup_misses_once)
    event = send(user_id="u-race", anonymous_id="anon-race")
    assert event.lead_id == other.pk
    assert Identity.objects.get(value="anon-race").lead_id == other.pk
    assert Lead.objects.count() == 1

"""Languages: English and German, chosen per user, with dates and numbers in the
user's locale; and a German catalog with every message translated."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from leads.models import Notification, Task, UserPreference
from leads.services.preferences import user_language_set
from tests.factories import (
    DeliveryFactory,
    EventFactory,
    HookSubscriptionFactory,
    LeadFactory,
    LeadImportFactory,
    TaskFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _task(**fields) -> Task:
    return TaskFactory.create(**{"title": "Call", **fields})


PO_FILE = Path(settings.BASE_DIR) / "locale" / "de" / "LC_MESSAGES" / "django.po"
MO_FILE = PO_FILE.with_suffix(".mo")


def test_a_german_user_gets_german_pages(client, sales):
    # Given a sales rep who chose German, with a lead
    user_language_set(user=sales, language="de")
    LeadFactory.create(owner=sales)
    client.force_login(sales)

    # When they open the dashboard and the leads list
    dashboard = client.get("/").content.decode()
    leads = client.get("/leads/").content.decode()

    # Then both are German, and say so
    assert '<html lang="de">' in dashboard
    assert "<span>neu diese Woche</span>" in dashboard
    assert '<a href="/tasks/">Aufgaben</a>' in dashboard
    assert ">Abmelden</button>" in dashboard
    assert 'data-column="last_activity" aria-sort="none">' in leads
    assert ">Letzte Aktivität</a></th>" in leads
    assert 'placeholder="Name, E-Mail oder Firma"' in leads
    assert "<span>new this week</span>" not in dashboard


def test_an_english_user_gets_english_pages(client, sales):
    user_language_set(user=sales, language="en")
    client.force_login(sales)

    dashboard = client.get("/", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert '<html lang="en">' in dashboard
    assert "<span>new this week</span>" in dashboard
    assert '<a href="/tasks/">Tasks</a>' in dashboard


def test_without_a_choice_the_browser_language_applies(client, sales):
    client.force_login(sales)

    german = client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").content.decode()
    english = client.get("/").content.decode()

    assert '<html lang="de">' in german
    assert "<span>neu diese Woche</span>" in german
    assert '<html lang="en">' in english


def test_the_language_page_changes_the_language(client, marketer):
    client.force_login(marketer)
    page = client.get("/account/language/").content.decode()
    assert 'href="/account/language/"' in page
    assert 'value="de"' in page

    response = client.post("/account/language/", {"language": "de"})

    assert response.status_code == 302
    assert response["Location"] == "/account/language/"
    assert UserPreference.objects.get(user=marketer).language == "de"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    after = client.get("/account/language/").content.decode()
    assert '<p class="flash">Ihre Sprache wurde gespeichert.</p>' in after
    assert '<html lang="de">' in after

    client.post("/account/language/", {"language": ""})

    assert UserPreference.objects.get(user=marketer).language == ""
    assert '<html lang="en">' in client.get("/").content.decode()


def test_the_language_page_refuses_an_unknown_language(client, admin_user):
    client.force_login(admin_user)

    response = client.post("/account/language/", {"language": "fr"})

    assert response.status_code == 200
    assert not UserPreference.objects.filter(user=admin_user).exists()


def test_the_language_page_needs_login(client):
    response = client.get("/account/language/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/account/language/"


def test_dates_follow_the_language(client, sales):
    occurred = dt.datetime(2025, 6, 11, 15, 0, tzinfo=dt.UTC)
    lead = LeadFactory.create(owner=sales)
    EventFactory.create(lead=lead, occurred_at=occurred)
    client.force_login(sales)

    english = client.get(f"/leads/{lead.pk}/").content.decode()
    user_language_set(user=sales, language="de")
    german = client.get(f"/leads/{lead.pk}/").content.decode()

    assert ">Wed 11 Jun 2025, 15:00</time>" in english
    assert ">Mi, 11.06.2025, 15:00</time>" in german


def test_numbers_follow_the_language(client, marketer):
    record = LeadImportFactory.create(
        original_name="fair.csv", status="done", rows_total=12345, rows_created=12000
    )
    client.force_login(marketer)

    english = client.get(f"/leads/import/{record.pk}/").content.decode()
    user_language_set(user=marketer, language="de")
    german = client.get(f"/leads/import/{record.pk}/").content.decode()

    assert "12,345 rows read · 12,000 created · 0 updated · 0 failed" in english
    assert "12.345 Zeilen gelesen · 12.000 erstellt · 0 aktualisiert · 0 fehlgeschlagen" in german
    assert 'data-status="done">Erledigt</strong>' in german


def test_task_due_dates_follow_the_language(client, sales):
    due = dt.datetime(2025, 6, 11, 15, 0, tzinfo=dt.UTC)
    _task(assignee=sales, due_at=due)
    client.force_login(sales)
    user_language_set(user=sales, language="de")

    html = client.get("/tasks/").content.decode()

    assert '<h2 class="h5" id="tasks-overdue-title">Überfällig' in html
    assert ">Mi, 11.06.2025, 15:00</time>" in html


def test_a_reassigned_task_is_announced_in_the_assignees_language(client, sales, other_sales):
    user_language_set(user=other_sales, language="de")
    task = _task(assignee=sales, title="Call back")
    client.force_login(sales)

    client.post(f"/tasks/{task.pk}/reassign/", {"assignee": other_sales.pk})

    message = Notification.objects.get(user=other_sales).message
    assert message == "sales-t hat Ihnen eine Aufgabe zugewiesen: Call back"


# --- the German catalog -----------------------------------------------------------


def _po_entries() -> list[str]:
    return PO_FILE.read_text(encoding="utf-8").split("\n\n")[1:]


def test_every_german_message_is_translated():
    untranslated = []
    fuzzy = []
    for entry in _po_entries():
        if re.search(r"^#, .*fuzzy", entry, re.M):
            fuzzy.append(entry)
        for match in re.finditer(r'^msgstr(?:\[\d\])? ((?:".*"\n?)+)', entry, re.M):
            if not "".join(re.findall(r'"(.*)"', match.group(1))):
                untranslated.append(entry)
    assert len(_po_entries()) > 300
    assert untranslated == []
    assert fuzzy == []
    assert "#, fuzzy" not in PO_FILE.read_text(encoding="utf-8").split("\n\n")[0]


def test_the_compiled_catalog_matches_the_po_file():
    # The .mo is committed: a fresh machine may have no gettext to compile it.
    assert MO_FILE.exists()
    assert MO_FILE.stat().st_mtime >= PO_FILE.stat().st_mtime - 1
    samples = {
        "Notifications": "Benachrichtigungen",
        "Your language is saved.": "Ihre Sprache wurde gespeichert.",
        "Notify sales": "Vertrieb benachrichtigen",
        "Last activity": "Letzte Aktivität",
        "Choose one of the listed templates.": "Wählen Sie eine der aufgeführten Vorlagen.",
    }
    po_text = PO_FILE.read_text(encoding="utf-8")
    with translation.override("de"):
        for english, german in samples.items():
            assert f'msgid "{english}"\nmsgstr "{german}"' in po_text
            assert translation.gettext(english) == german
        assert translation.ngettext("%(count)d day", "%(count)d days", 3) == "%(count)d Tage"
    # Every msgid of the .po is in the compiled catalog with the same translation.
    with translation.override("de"):
        for entry in _po_entries():
            msgid = re.search(r'^msgid "(.*)"$', entry, re.M)
            msgstr = re.search(r'^msgstr "(.+)"$', entry, re.M)
            if msgid and msgid.group(1) and msgstr:
                english = msgid.group(1).replace('\\"', '"')
                assert translation.gettext(english) == msgstr.group(1).replace('\\"', '"')


def test_the_webhooks_page_in_german(client, admin_user):
    user_language_set(user=admin_user, language="de")
    hook = HookSubscriptionFactory.create(events=["lead.mql"])
    DeliveryFactory.create(
        hook=hook, target=hook.target_url, status="failed", attempts=3, response_code=500
    )
    client.force_login(admin_user)

    page = client.get("/settings/webhooks/").content.decode()
    refused = client.post("/settings/webhooks/", {"target_url": "ftp:/", "events": []})

    assert "<title>Webhooks · Leadflow</title>" in page
    assert '<th scope="col">Versuche</th>' in page
    assert '<th scope="col">Antwort</th>' in page
    assert '<span class="badge text-bg-danger">Fehlgeschlagen</span>' in page
    assert "lead.mql: Der Score eines Leads hat den MQL-Schwellenwert erreicht" in page
    assert 'hx-confirm="Dieses Abonnement löschen? Noch nicht gesendete Zustellungen' in page
    assert '<h2 class="h5">Neues Abonnement</h2>' in page
    errors = refused.content.decode()
    assert "Geben Sie eine gültige URL ein." in errors
    assert "Dieses Feld ist erforderlich." in errors


def test_identity_verification_in_german(client, admin_user):
    user_language_set(user=admin_user, language="de")
    client.force_login(admin_user)

    created = client.post("/settings/integrations/identity-secret/", follow=True)
    turned_off = client.post(
        "/settings/integrations/identity-secret/", {"remove": "1"}, follow=True
    )

    page = created.content.decode()
    assert '<h2 class="h5">Identitätsprüfung</h2>' in page
    assert "Der Geheimschlüssel wird nur jetzt angezeigt." in page
    assert ">Geheimschlüssel ersetzen</button>" in page
    assert ">Ausschalten</button>" in page
    assert "Die Identitätsprüfung ist ausgeschaltet." in turned_off.content.decode()
    assert ">Geheimschlüssel erstellen</button>" in turned_off.content.decode()


def test_the_login_lockout_in_german(client):
    UserFactory.create(username="rep", role="sales")
    for n in range(10):
        client.post(
            "/login/", {"username": "rep", "password": f"guess-{n}"}, HTTP_ACCEPT_LANGUAGE="de"
        )

    locked = client.post(
        "/login/", {"username": "rep", "password": "pw-for-tests"}, HTTP_ACCEPT_LANGUAGE="de"
    )

    assert (
        "Zu viele Versuche. Bitte warten Sie 15 Minuten, bevor Sie es erneut versuchen."
        in locked.content.decode()
    )

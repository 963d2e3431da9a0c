"""The flow builder in German: the page, the canvas's embedded catalog, the node
registry over the API, the node forms and the problems publishing reports; and
the canvas's own catalog (djangojs), complete and in step with the sources."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils import translation
from django.utils.timezone import localtime

from flows.lifecycle import flow_create
from flows.management.commands.makemessages import (
    ANY_TRANSLATION_CALL,
    TRANSLATION_CALL,
    jsx_messages,
)
from flows.models import Flow
from flows.nodes.base import SECRET_SET
from leads.services.preferences import user_language_set
from segments.services import segment_create
from tests.factories import LeadFactory
from tests.flows.helpers import graph, published

ROOT = Path(settings.BASE_DIR)
MESSAGES = ROOT / "locale" / "de" / "LC_MESSAGES"
CANVAS_SOURCES = ROOT / "frontend" / "src"


def _script_json(html: str, element_id: str) -> dict:
    opening = f'<script id="{element_id}" type="application/json">'
    start = html.index(opening) + len(opening)
    return json.loads(html[start : html.index("</script>", start)])


@pytest.fixture
def german(marketer):
    user_language_set(user=marketer, language="de")
    return marketer


@pytest.mark.django_db
def test_the_builder_page_in_german_embeds_the_canvas_catalog(client, german):
    flow = flow_create(name="Willkommen", created_by=german)
    client.force_login(german)

    html = client.get(f"/flows/{flow.pk}/").content.decode()

    assert '<html lang="de">' in html
    assert 'data-bs-toggle="dropdown" aria-expanded="false">Versionen</button>' in html
    assert 'aria-current="page">Entwurf</a>' in html
    assert '<span class="dropdown-item-text text-muted">Noch nicht veröffentlicht.</span>' in html
    assert '<a class="ms-auto small" href="/flows/">Alle Flows</a>' in html
    assert '<p class="text-muted">Die Arbeitsfläche wird geladen …</p>' in html
    # The catalog comes before the bundle that reads it.
    assert html.index('<script id="lf-i18n"') < html.index("build/builder.js")
    catalog = _script_json(html, "lf-i18n")
    assert catalog["plural"] == "(n != 1)"
    assert catalog["catalog"]["All changes saved"] == "Alle Änderungen gespeichert"
    assert catalog["catalog"]["Test on a lead"] == "An einem Lead testen"
    assert catalog["catalog"]["%(count)s node selected."] == [
        "%(count)s Knoten ausgewählt.",
        "%(count)s Knoten ausgewählt.",
    ]
    # Only our own messages: not the JavaScript catalogs of Django's apps.
    assert len(catalog["catalog"]) == len(_entries(MESSAGES / "djangojs.po"))
    # The registry's labels in the embedded data are German too.
    types = {t["key"]: t for t in _script_json(html, "builder-data")["nodeTypes"]}
    assert types["sales.notify"]["label"] == "Vertrieb benachrichtigen"


@pytest.mark.django_db
def test_the_builder_page_in_english_has_an_empty_catalog(client, marketer):
    flow = flow_create(name="Welcome", created_by=marketer)
    client.force_login(marketer)

    html = client.get(f"/flows/{flow.pk}/").content.decode()

    assert '<html lang="en">' in html
    assert _script_json(html, "lf-i18n") == {"catalog": {}, "plural": None}
    assert ">Versions</button>" in html
    assert ">Loading the canvas…</p>" in html


@pytest.mark.django_db
def test_a_published_version_is_described_in_german(client, german):
    flow = published("Heiß", graph(("t", "app.event", {"event": "Signed up"})))
    version = flow.published
    assert version is not None
    version.created_by = german
    version.save(update_fields=["created_by"])
    client.force_login(german)

    html = client.get(f"/flows/{flow.pk}/?version=1").content.decode()

    with translation.override("de"):
        when = date_filter(localtime(version.created_at), "SHORT_DATETIME_FORMAT")
    assert f"Version 1, veröffentlicht am {when} von marketer-t (schreibgeschützt)" in html
    assert ">Als Entwurf wiederherstellen</button>" in html
    assert '<span class="badge text-bg-success ms-auto">aktuell</span>' in html


@pytest.mark.django_db
def test_the_flow_list_offers_the_templates_in_german(client, german):
    client.force_login(german)

    html = client.get("/flows/").content.decode()
    response = client.post("/flows/", {"name": "", "template": "b2b-fit"})

    assert '<h3 id="template-b2b-fit" class="h6 card-title">B2B-Fit bewerten</h3>' in html
    assert '<p class="small text-muted flex-grow-1">Wird ein Lead' in html
    assert response.status_code == 302
    flow = Flow.objects.get()
    assert flow.name == "B2B-Fit bewerten"
    assert flow.description.startswith("Fit-Punkte für jeden neuen Lead:")


@pytest.mark.django_db
def test_node_types_answer_in_the_users_language(marketer_api, marketer):
    english = {t["key"]: t for t in marketer_api.get("/api/v1/flows/node-types/").json()["results"]}
    user_language_set(user=marketer, language="de")
    german = {t["key"]: t for t in marketer_api.get("/api/v1/flows/node-types/").json()["results"]}

    assert english["sales.notify"]["label"] == "Notify sales"
    assert german["sales.notify"]["label"] == "Vertrieb benachrichtigen"
    assert german["score.adjust"]["label"] == "Lead-Score anpassen"
    assert german["segment.entered"]["description"] == (
        "Startet, wenn ein Lead in ein Segment aufgenommen wird."
    )
    # Keys, kinds and schemas are the same in every language.
    assert german.keys() == english.keys()
    assert german["score.adjust"]["config_schema"] == english["score.adjust"]["config_schema"]


@pytest.mark.django_db
def test_the_node_form_answers_in_the_users_language(client, german):
    segment = segment_create(
        name="Hot", conditions={"all": [{"field": "score", "op": "gte", "value": 50}]}
    )
    flow = flow_create(name="Willkommen", created_by=german)
    client.force_login(german)
    url = reverse("flow-node-form", args=[flow.pk])

    shown = client.get(url, {"type": "score.adjust", "node": "s"}).content.decode()
    invalid = client.post(url, {"type": "score.adjust", "node": "s", "points": "0"})
    applied = client.post(url, {"type": "segment.entered", "node": "t", "segment": str(segment.pk)})

    assert '<h2 class="h6 mb-1">Lead-Score anpassen</h2>' in shown
    assert ">Punkte</label>" in shown
    assert '<div class="form-text">Negativ, um Punkte abzuziehen.</div>' in shown
    assert "</button>" not in shown  # settings apply as they are typed
    body = invalid.content.decode()
    # The sentences in the user's language (as far as the catalog has them yet).
    with translation.override("de"):
        zero = translation.gettext("“%(label)s” cannot be 0.") % {"label": "Punkte"}
        reason = translation.gettext(
            "Say why the lead gets the points: the reason is shown on its profile."
        )
    assert f'<div class="invalid-feedback d-block">{zero}</div>' in body
    assert f'<div class="invalid-feedback d-block">{reason}</div>' in body
    configured = json.loads(applied.headers["HX-Trigger"])["leadflow:node-configured"]
    assert configured["summary"] == "Segment betreten: Hot"


@pytest.mark.django_db
def test_a_secret_in_the_node_form_is_described_in_german(client, german):
    flow = flow_create(name="Willkommen", created_by=german)
    client.force_login(german)
    url = reverse("flow-node-form", args=[flow.pk])
    config = {"url": "https://crm.example/hook"}

    unset = client.get(url, {"type": "webhook.send", "node": "w", "config": json.dumps(config)})
    masked = json.dumps({**config, "secret": SECRET_SET})
    kept = client.get(url, {"type": "webhook.send", "node": "w", "config": masked})

    body = unset.content.decode()
    assert 'placeholder="Nicht gesetzt"' in body
    assert 'data-secret="not-set">Nicht gesetzt.</div>' in body
    body = kept.content.decode()
    assert 'placeholder="Gesetzt (zum Ersetzen neu eingeben)"' in body
    assert (
        'data-secret="set">Gesetzt. Der Wert wird nie wieder angezeigt; lassen Sie das Feld '
        "leer, um ihn zu behalten.</div>"
    ) in body
    assert '-clear">Entfernen</label>' in body


@pytest.mark.django_db
def test_publishing_problems_come_back_in_the_users_language(marketer_api, marketer):
    user_language_set(user=marketer, language="de")
    flow = flow_create(
        name="Kaputt",
        created_by=marketer,
        graph=graph(
            ("s", "score.adjust", {"points": 5000, "category": "fit"}),
            ("x", "exit", {}),
        ),
    )

    response = marketer_api.post(f"/api/v1/flows/{flow.pk}/validate/")

    error = response.json()["error"]
    assert error["message"] == "Der Flow hat Probleme; siehe die einzelnen Knoten."
    with translation.override("de"):
        expected = {
            "graph": [
                translation.gettext(
                    "Add a trigger: it decides which leads start the flow, and when."
                )
            ],
            "reason": translation.gettext(
                "Say why the lead gets the points: the reason is shown on its profile."
            ),
            "points": translation.gettext("“%(label)s” must be at most %(limit)s.")
            % {"label": "Punkte", "limit": 1000},
        }
    assert error["graph"] == expected["graph"]
    assert error["nodes"]["s"] == {
        "config.reason": [expected["reason"]],
        "config.points": [expected["points"]],
    }


@pytest.mark.django_db
def test_a_test_run_is_described_in_the_users_language(client, german):
    flow = flow_create(
        name="Demo",
        created_by=german,
        graph=graph(
            ("t", "app.event", {"event": "Requested demo"}),
            ("tag", "tag.add", {"tag": "vip"}),
            ("end", "exit", {}),
        ),
    )
    lead = LeadFactory.create(first_name="Kim")
    client.force_login(german)

    response = client.post(
        f"/api/v1/flows/{flow.pk}/dry-run/",
        {"lead": lead.pk, "event": {"type": "track", "name": "Requested demo"}},
        content_type="application/json",
    )

    body = response.json()
    assert body["entry"]["reason"] == (
        "Bisher nicht aufgenommen; dieser Flow lässt einen Lead einmal hinein."
    )
    assert [(s["outcome"], s["effect"]) for s in body["steps"]] == [
        (
            "matched",
            "startet bei App-Ereignis: Requested demo, "
            "durch das ausgedachte Ereignis “App-Ereignis: Requested demo”",
        ),
        ("would_apply", "Tag vip hinzufügen"),
        ("ended", "Ende des Flows"),
    ]


def test_schema_problems_are_sentences_that_name_the_setting():
    from flows.graph import config_problems
    from flows.nodes import REGISTRY

    with translation.override("en"):
        problems = config_problems(REGISTRY["score.adjust"], {"points": 5000, "category": "fit"})
        unknown = config_problems(
            REGISTRY["score.adjust"],
            {"points": 5, "category": "fit", "reason": "x", "color": "red"},
        )
        typed = config_problems(REGISTRY["sales.notify"], {"title": "x", "due_in": {"amount": "a"}})

    assert problems == {
        "reason": ["Say why the lead gets the points: the reason is shown on its profile."],
        "points": ["“Points” must be at most 1000."],
    }
    assert unknown == {"": ["This step has settings it does not know: 'color'. Delete them."]}
    assert typed == {
        "due_in.amount": ["“Amount” takes a whole number."],
        "due_in.unit": ["Choose a unit: minutes, hours, days …"],
    }


# --- the catalogs -----------------------------------------------------------------


def _unquote(lines: list[str]) -> str:
    return "".join(json.loads(line[line.index('"') :]) for line in lines)


def _entries(path: Path) -> list[dict]:
    """The entries of a .po file (not the header, not obsolete ones): msgid,
    msgid_plural, msgstr (a list: one item, or one per plural form), flags."""
    entries = []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#~")]
        fields: dict[str, list[str]] = {}
        current = None
        flags: list[str] = []
        for line in lines:
            if line.startswith("#,"):
                flags += [flag.strip() for flag in line[2:].split(",")]
            elif line.startswith("#"):
                continue
            elif line.startswith('"') and current:
                fields[current].append(line)
            else:
                current, _, rest = line.partition(" ")
                fields[current] = [rest]
        if "msgid" not in fields or _unquote(fields["msgid"]) == "":
            continue
        strings = [_unquote(v) for k, v in sorted(fields.items()) if k.startswith("msgstr")]
        entries.append(
            {
                "msgid": _unquote(fields["msgid"]),
                "msgid_plural": _unquote(fields.get("msgid_plural", ['""'])),
                "msgstr": strings,
                "flags": flags,
            }
        )
    return entries


def _header(path: Path) -> str:
    return path.read_text(encoding="utf-8").split("\n\n")[0]


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_every_message_is_translated_and_none_is_fuzzy(domain):
    path = MESSAGES / f"{domain}.po"
    entries = _entries(path)

    assert len(entries) > 100
    assert [e["msgid"] for e in entries if not all(e["msgstr"])] == []
    assert [e["msgid"] for e in entries if "fuzzy" in e["flags"]] == []
    assert [e["msgid"] for e in entries if e["msgid_plural"] and len(e["msgstr"]) != 2] == []
    header = _header(path)
    assert "fuzzy" not in header
    assert '"Language: de\\n"' in header
    assert '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"' in header
    # Placeholders survive translation (a singular form may leave out the count).
    placeholder = re.compile(r"%\(\w+\)[sd]")
    for entry in entries:
        wanted = set(placeholder.findall(entry["msgid"] + entry["msgid_plural"]))
        for msgstr in entry["msgstr"]:
            found = set(placeholder.findall(msgstr))
            assert found == wanted or (entry["msgid_plural"] and found < wanted), entry["msgid"]


def test_the_compiled_canvas_catalog_matches_the_po_file():
    path = MESSAGES / "djangojs.po"
    assert path.with_suffix(".mo").exists()
    from flows.views import canvas_catalog

    canvas_catalog.cache_clear()
    catalog = canvas_catalog("de")["catalog"]
    for entry in _entries(path):
        expected = entry["msgstr"] if entry["msgid_plural"] else entry["msgstr"][0]
        assert catalog[entry["msgid"]] == expected


def _canvas_sources() -> list[Path]:
    return sorted(
        p for p in CANVAS_SOURCES.rglob("*") if p.suffix in (".js", ".jsx") and p.name != "i18n.js"
    )


def test_every_canvas_string_is_in_the_catalog():
    # `make messages` reads the sources with the same pattern, so a string the
    # catalog lacks means the catalog was not regenerated after a change.
    marked: set[str] = set()
    for path in _canvas_sources():
        source = path.read_text(encoding="utf-8")
        calls = TRANSLATION_CALL.findall(source)
        # Every call has literal strings, or xgettext could not read it.
        assert len(calls) == len(ANY_TRANSLATION_CALL.findall(source)), path
        for call in TRANSLATION_CALL.finditer(source):
            for literal in re.findall(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", call.group(0)):
                text = literal[1:-1].replace("\\'", "'").replace('\\"', '"')
                marked.add(text)
    in_catalog = set()
    for entry in _entries(MESSAGES / "djangojs.po"):
        in_catalog.add(entry["msgid"])
        if entry["msgid_plural"]:
            in_catalog.add(entry["msgid_plural"])

    assert len(marked) > 100
    assert marked - in_catalog == set()
    assert in_catalog - marked == set()


def test_jsx_is_handed_to_xgettext_as_its_calls_on_their_lines():
    source = (
        "const a = 1;\n"
        "<p title={gettext('Don\\'t')}>It's {n}</p>\n"
        '{ngettext(\n  "%(count)s node",\n  "%(count)s nodes",\n  count,\n)}\n'
    )

    assert jsx_messages(source).split("\n") == [
        "",
        "gettext('Don\\'t');",
        'ngettext( "%(count)s node", "%(count)s nodes");',
        "",
        "",
        "",
        "",
        "",
    ]

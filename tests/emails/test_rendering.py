"""A template rendered for a lead: merge tags filled and escaped, the text part,
the footer, tracked links and the pixel; merge tags checked in plain sentences."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from emails.models import EmailKind, EmailSettings
from emails.rendering import email_render, merge_tag_problems, template_compile
from tests.factories import EmailTemplateFactory, FieldDefinitionFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

BLOCKS = [
    {"type": "heading", "text": 'Welcome, {{ first_name | default: "friend" }}'},
    {
        "type": "text",
        "text": "Thanks for trying **{{ company_name }}**. "
        "[Read the guide](https://acme.example/guide?e={{ email }}&x=1)",
    },
    {"type": "button", "label": "Book a demo", "url": "https://acme.example/demo"},
    {
        "type": "columns",
        "left": [{"type": "text", "text": 'Plan: {{ custom.plan | fallback: "free" }}'}],
        "right": [
            {
                "type": "image",
                "src": "https://acme.example/logo.png",
                "alt": "Logo for {{ first_name }}",
                "link": "https://acme.example/",
            }
        ],
    },
    {"type": "divider"},
    {"type": "spacer", "height": 16},
    {"type": "text", "text": "Your contact: {{ owner.name }}"},
]


def _hrefs(document: str) -> list[str]:
    return re.findall(r'<a\b[^>]*?\bhref="([^"]*)"', document)


def test_merge_tags_are_filled_and_escaped_in_the_html_and_plain_in_the_text():
    owner = UserFactory.create(first_name="Jonas", last_name="Weber")
    lead = LeadFactory.create(
        first_name="Ann <b>",
        company_name="Müller & Söhne",
        email="ann@acme.example",
        custom_fields={"plan": "pro"},
        owner=owner,
    )
    template = EmailTemplateFactory.create(
        subject="Hi {{ first_name }}", preheader="For {{ company_name }}", blocks=BLOCKS
    )

    email = email_render(template=template, lead=lead)

    assert email.subject == "Hi Ann <b>"
    assert email.preheader == "For Müller & Söhne"
    assert "Welcome, Ann &lt;b&gt;</h1>" in email.html
    assert "<strong>Müller &amp; Söhne</strong>" in email.html
    assert "Plan: pro" in email.html
    assert 'alt="Logo for Ann &lt;b&gt;"' in email.html
    assert "Your contact: Jonas Weber" in email.html
    assert "Ann <b>" not in email.html
    assert email.html.startswith("<!doctype html>")
    assert _hrefs(email.html) == [
        "https://acme.example/guide?e=ann@acme.example&amp;x=1",
        "https://acme.example/demo",
        "https://acme.example/",
    ]
    assert email.text == (
        "Welcome, Ann <b>\n\n"
        "Thanks for trying **Müller & Söhne**. Read the guide "
        "(https://acme.example/guide?e=ann@acme.example&x=1)\n\n"
        "Book a demo: https://acme.example/demo\n\n"
        "Plan: pro\n\n"
        "Logo for Ann <b>: https://acme.example/\n\n"
        "----------\n\n"
        "Your contact: Jonas Weber\n"
    )


def test_undefined_values_are_empty_or_the_fallback():
    lead = LeadFactory.create(first_name="", company_name="", custom_fields={})
    template = EmailTemplateFactory.create(
        subject='Hello {{ first_name | default: "there" }}', blocks=BLOCKS
    )

    email = email_render(template=template, lead=lead)

    assert email.subject == "Hello there"
    assert "Welcome, friend</h1>" in email.html
    assert "Plan: free" in email.html
    assert "Thanks for trying <strong></strong>." in email.html
    assert "Your contact: </p>" in email.html


def test_marketing_footer_links_are_tracked_but_not_the_unsubscribe_link():
    lead = LeadFactory.create(first_name="Ann", email="ann@acme.example")
    template = EmailTemplateFactory.create(kind=EmailKind.MARKETING, blocks=BLOCKS)
    EmailSettings.objects.create(postal_address="Acme GmbH\nHauptstraße 1\n10115 Berlin")

    email = email_render(
        template=template,
        lead=lead,
        unsubscribe_url="https://app.example/u/tok?x=1&y=2",
        link_wrap=lambda url: "https://app.example/c/" + url.replace("https://", ""),
        open_pixel_url="https://app.example/o/tok.gif",
    )

    assert _hrefs(email.html) == [
        "https://app.example/c/acme.example/guide?e=ann@acme.example&amp;x=1",
        "https://app.example/c/acme.example/demo",
        "https://app.example/c/acme.example/",
        "https://app.example/u/tok?x=1&amp;y=2",
    ]
    assert "Acme GmbH<br>Hauptstraße 1<br>10115 Berlin" in email.html
    assert ">Unsubscribe</a>" in email.html
    assert email.html.count('src="https://app.example/o/tok.gif" width="1" height="1"') == 1
    assert email.html.index("o/tok.gif") > email.html.index(">Unsubscribe</a>")
    assert email.html.rstrip().endswith("</body></html>")
    assert email.text.endswith(
        "-- \nAcme GmbH\nHauptstraße 1\n10115 Berlin\n"
        "Unsubscribe: https://app.example/u/tok?x=1&y=2\n"
    )
    assert "Book a demo: https://app.example/c/acme.example/demo" in email.text


def test_no_footer_without_unsubscribe_url_or_for_transactional_email():
    lead = LeadFactory.create()
    marketing = EmailTemplateFactory.create(kind=EmailKind.MARKETING)
    transactional = EmailTemplateFactory.create(kind=EmailKind.TRANSACTIONAL)

    without_url = email_render(template=marketing, lead=lead, postal_address="Somewhere 1")
    transactional_email = email_render(
        template=transactional, lead=lead, unsubscribe_url="https://u", postal_address="Somewhere 1"
    )

    for email in (without_url, transactional_email):
        assert "Unsubscribe" not in email.html
        assert "Somewhere 1" not in email.html
        assert "Unsubscribe" not in email.text


def test_subject_override_replaces_the_templates_subject():
    lead = LeadFactory.create(first_name="Jana", language="de")
    template = EmailTemplateFactory.create(kind=EmailKind.MARKETING)

    email = email_render(
        template=template,
        lead=lead,
        subject_override="Neu für {{ first_name }}",
        unsubscribe_url="https://u",
        postal_address="Acme",
    )

    assert email.subject == "Neu für Jana"
    assert "<title>Hello Jana</title>" in email.html


def test_compiled_once_per_revision():
    lead = LeadFactory.create(first_name="Ann")
    template = EmailTemplateFactory.create(blocks=BLOCKS)

    first = template_compile(template=template, footer=False)
    again = template_compile(template=template, footer=False)
    template.blocks = [{"type": "text", "text": "Changed {{ first_name }}"}]
    template.revision += 1
    template.save()
    changed = template_compile(template=template, footer=False)

    assert again is first
    assert changed is not first
    assert "Changed Ann" in email_render(template=template, lead=lead).html


def test_rendering_reads_nothing_but_the_owner_when_a_tag_names_it():
    owner = UserFactory.create(first_name="Jonas", last_name="Weber")
    lead = LeadFactory.create(owner=owner)
    without_owner = EmailTemplateFactory.create()
    with_owner = EmailTemplateFactory.create(blocks=BLOCKS)
    email_render(template=without_owner, lead=lead, postal_address="")
    email_render(template=with_owner, lead=lead, postal_address="")

    with CaptureQueriesContext(connection) as plain:
        email_render(template=without_owner, lead=lead)
    lead = type(lead).objects.get(pk=lead.pk)
    with CaptureQueriesContext(connection) as owned:
        email_render(template=with_owner, lead=lead)

    assert len(plain) == 0
    assert len(owned) == 1


def test_merge_tag_problems_name_unknown_fields_and_bad_syntax():
    FieldDefinitionFactory.create(key="plan")

    assert merge_tag_problems('Hi {{ first_name | default: "there" }} on {{ custom.plan }}') == []
    assert merge_tag_problems("{{ firstname }} and {{ custom.plna }}") == [
        "There is no lead field called “firstname”. Did you mean “first_name”?",
        "There is no custom field called “plna”. Did you mean “plan”?",
    ]
    assert merge_tag_problems("{{ owner.email }}") == [
        "“owner.email” is not available: of the owner, a template can use owner.name and "
        "owner.first_name."
    ]
    assert merge_tag_problems("{% include 'secrets' %}") == [
        "“{% include 'secrets' %}” cannot be used: a template fills in values with merge tags "
        "like {{ first_name }}, it has no other instructions."
    ]
    assert merge_tag_problems("Hi {{ first_name") == [
        "A merge tag is not closed: every “{{” needs its “}}”, as in {{ first_name }}."
    ]
    assert merge_tag_problems("{{ first_name | safe }}") == [
        "The merge tag “{{ first_name | safe }}” uses “safe”, which does not exist."
    ]
    assert merge_tag_problems("{{ first_name | }}") == [
        "The merge tag “{{ first_name | }}” is not written correctly "
        "(expected word, found end of expression)."
    ]


def test_a_merge_tag_cannot_reach_outside_the_lead():
    lead = LeadFactory.create(first_name="Ann")
    template = EmailTemplateFactory.create(
        subject="{{ settings.SECRET_KEY }}{{ lead.__class__ }}{{ first_name.__class__ }}",
        blocks=[{"type": "text", "text": "x{{ email.__dict__ }}y{% include 'a' %}"}],
    )

    email = email_render(template=template, lead=lead)

    assert email.subject == ""
    assert '<p style="margin:0 0 12px 0;">xy{% include' in email.html

"""The template editor (admins and marketers), its preview and test send; the
senders and email settings (admins)."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from emails.models import EmailSettings, EmailTemplate, FrequencyPeriod, Sender
from tests.factories import (
    EmailTemplateFactory,
    FieldDefinitionFactory,
    LeadFactory,
    SenderFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

BLOCKS = [
    {"type": "heading", "text": 'Hallo {{ first_name | default: "du" }}'},
    {"type": "text", "text": "Willkommen bei **{{ company_name }}**."},
    {"type": "button", "label": "Los geht's", "url": "https://acme.example/start"},
]


def _form(**changes):
    data = {
        "name": "Willkommen",
        "subject": "Hallo {{ first_name }}",
        "preheader": "Schön, dass du da bist",
        "sender": "",
        "kind": "marketing",
        "blocks": json.dumps(BLOCKS),
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("role", ["admin_user", "marketer"])
def test_builders_list_create_and_edit_templates(client, request, role):
    user = request.getfixturevalue(role)
    sender = SenderFactory.create(name="Lena", address="lena@acme.example")
    client.force_login(user)

    created = client.post("/emails/templates/new/", _form(sender=str(sender.pk)))
    template = EmailTemplate.objects.get()
    edited = client.post(
        f"/emails/templates/{template.pk}/", _form(name="Willkommen 2", subject="Neu")
    )
    listed = client.get("/emails/templates/").content.decode()

    template.refresh_from_db()
    assert created.status_code == 302
    assert created["Location"] == f"/emails/templates/{template.pk}/"
    assert edited.status_code == 302
    assert (template.name, template.subject, template.revision) == ("Willkommen 2", "Neu", 2)
    assert template.blocks == BLOCKS
    assert template.created_by == user
    assert template.sender is None
    assert f'<a href="/emails/templates/{template.pk}/">Willkommen 2</a>' in listed


def test_the_editor_names_unknown_fields_and_keeps_what_was_written(client, marketer):
    FieldDefinitionFactory.create(key="plan")
    blocks = [*BLOCKS, {"type": "text", "text": "Plan {{ custom.plna }} for {{ firstname }}"}]
    client.force_login(marketer)

    response = client.post(
        "/emails/templates/new/", _form(subject="Hi {{ frist_name }}", blocks=json.dumps(blocks))
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert EmailTemplate.objects.count() == 0
    assert "There is no lead field called “frist_name”. Did you mean “first_name”?" in html
    assert "There is no custom field called “plna”. Did you mean “plan”?" in html
    assert "There is no lead field called “firstname”. Did you mean “first_name”?" in html
    # What was written is still there to fix.
    assert "Plan {{ custom.plna }} for {{ firstname }}" in html
    assert 'value="Hi {{ frist_name }}"' in html


def test_a_duplicate_name_is_refused_whatever_its_case(client, marketer):
    EmailTemplateFactory.create(name="Welcome")
    client.force_login(marketer)

    response = client.post("/emails/templates/new/", _form(name="welcome"))

    assert response.status_code == 200
    assert "Another template is already called “welcome”." in response.content.decode()
    assert EmailTemplate.objects.count() == 1


def test_bad_blocks_are_named_in_sentences(client, marketer):
    client.force_login(marketer)
    blocks = [{"type": "button", "label": "", "url": "javascript:alert(1)"}, {"type": "video"}]

    response = client.post("/emails/templates/new/", _form(blocks=json.dumps(blocks)))

    html = response.content.decode()
    assert "Block 1: the button has no label." in html
    assert "Block 1: the button&#x27;s link must start with https://, http:// or mailto:." in html
    assert "Block 2: “video” is not a kind of block." in html


def test_preview_renders_the_unsaved_editor_for_the_chosen_lead(client, marketer):
    LeadFactory.create(email="first@acme.example", first_name="Erste")
    LeadFactory.create(email="jana@acme.example", first_name="Jana <3", company_name="Acme & Co")
    client.force_login(marketer)

    latest = client.post("/emails/templates/preview/", _form()).content.decode()
    chosen = client.post(
        "/emails/templates/preview/", _form(preview_lead="first@acme.example")
    ).content.decode()
    missing = client.post(
        "/emails/templates/preview/", _form(preview_lead="nobody@acme.example")
    ).content.decode()

    # The iframe's srcdoc holds the HTML escaped once more: a lead's "<" is &amp;lt; there.
    assert 'id="preview-subject">Hallo Jana &lt;3</td>' in latest
    assert "Hallo Jana &amp;lt;3" in latest
    assert "Willkommen bei &lt;strong&gt;Acme &amp;amp; Co&lt;/strong&gt;" in latest
    assert '<pre class="small bg-body-tertiary' in latest
    assert "Hallo Jana &lt;3\n\nWillkommen bei **Acme &amp; Co**." in latest
    assert 'id="preview-subject">Hallo Erste</td>' in chosen
    assert "No lead has the address nobody@acme.example." in missing


def test_preview_of_a_saved_template_shows_problems_but_still_renders(client, marketer):
    template = EmailTemplateFactory.create()
    LeadFactory.create(first_name="Jana")
    client.force_login(marketer)

    html = client.post(
        f"/emails/templates/{template.pk}/preview/", _form(name="", subject="Hi {{ nope }}")
    ).content.decode()

    assert "<li>Subject: There is no lead field called “nope”.</li>" in html
    assert "required" not in html
    assert 'id="preview-subject">Hi</td>' in html


def test_send_a_test_to_me(client, marketer):
    marketer.email = "lena@acme.example"
    marketer.save()
    sender = SenderFactory.create(
        name="Lena", address="news@acme.example", reply_to="hi@acme.example"
    )
    LeadFactory.create(first_name="Jana", email="jana@acme.example", company_name="Acme")
    EmailSettings.objects.create(postal_address="Acme GmbH, Berlin")
    client.force_login(marketer)

    response = client.post("/emails/templates/test/", _form(sender=str(sender.pk)))

    assert "A test is on its way to lena@acme.example." in response.content.decode()
    [message] = mail.outbox
    assert message.subject == "[Test] Hallo Jana"
    assert message.to == ["lena@acme.example"]
    assert message.from_email == "Lena <news@acme.example>"
    assert message.reply_to == ["hi@acme.example"]
    assert message.body.startswith(
        "Hallo Jana\n\nWillkommen bei **Acme**.\n\nLos geht's: https://acme.example/start\n"
    )
    assert "Acme GmbH, Berlin" in message.body
    assert isinstance(message, EmailMultiAlternatives)
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert "Willkommen bei <strong>Acme</strong>." in str(html)


def test_sales_reps_cannot_open_or_post_the_editor(client, sales):
    template = EmailTemplateFactory.create()
    client.force_login(sales)

    for path in (
        "/emails/templates/",
        "/emails/templates/new/",
        f"/emails/templates/{template.pk}/",
    ):
        assert client.get(path).status_code == 403
    for path in (
        "/emails/templates/preview/",
        "/emails/templates/test/",
        f"/emails/templates/{template.pk}/delete/",
    ):
        assert client.post(path, _form()).status_code == 403
    assert EmailTemplate.objects.filter(pk=template.pk).exists()


def test_delete_a_template(client, marketer):
    template = EmailTemplateFactory.create()
    client.force_login(marketer)

    response = client.post(f"/emails/templates/{template.pk}/delete/")

    assert response.status_code == 302
    assert not EmailTemplate.objects.exists()


def test_template_list_in_few_queries(client, marketer, django_assert_max_num_queries):
    EmailTemplateFactory.create_batch(30)
    client.force_login(marketer)

    with django_assert_max_num_queries(7):
        response = client.get("/emails/templates/")

    assert response.content.decode().count('<a href="/emails/templates/') == 30 + 1


# --- senders and settings -------------------------------------------------------------


def test_admins_add_and_remove_senders(client, admin_user):
    client.force_login(admin_user)

    added = client.post(
        "/settings/email/",
        {"form": "sender", "name": "Lena", "address": "Lena@Acme.example", "reply_to": ""},
    )
    again = client.post(
        "/settings/email/",
        {"form": "sender", "name": "Lena 2", "address": "lena@acme.example", "reply_to": ""},
    )
    sender = Sender.objects.get()
    removed = client.post(f"/settings/email/senders/{sender.pk}/delete/")

    assert added.status_code == 302
    assert (sender.name, sender.address) == ("Lena", "lena@acme.example")
    assert "This address is already a sender." in again.content.decode()
    assert removed.status_code == 302
    assert not Sender.objects.exists()


def test_a_sender_in_use_is_kept_with_the_reason(client, admin_user):
    template = EmailTemplateFactory.create(name="Welcome")
    client.force_login(admin_user)

    response = client.post(f"/settings/email/senders/{template.sender_id}/delete/", follow=True)

    assert Sender.objects.filter(templates=template).exists()
    assert "Templates still send from this address: Welcome." in response.content.decode()


def test_admins_change_the_email_settings(client, admin_user):
    client.force_login(admin_user)

    page = client.get("/settings/email/")
    partial = client.get("/settings/email/", HTTP_HX_REQUEST="true")
    saved = client.post(
        "/settings/email/",
        {
            "form": "settings",
            "postal_address": "Acme GmbH\nHauptstraße 1\n10115 Berlin",
            "sends_per_minute": "120",
            "frequency_cap": "2",
            "frequency_period": "day",
            "send_window_start": "08:00",
            "send_window_end": "20:00",
        },
    )

    current = EmailSettings.objects.get()
    assert page.status_code == 200
    assert 'id="email-settings"' in page.content.decode()
    assert (
        'name="require_double_opt_in" id="id_require_double_opt_in" checked'
        in page.content.decode()
    )
    assert "<html" not in partial.content.decode()
    assert saved.status_code == 302
    assert current.postal_address == "Acme GmbH\nHauptstraße 1\n10115 Berlin"
    assert (current.sends_per_minute, current.frequency_cap) == (120, 2)
    assert current.frequency_period == FrequencyPeriod.DAY
    assert (str(current.send_window_start), str(current.send_window_end)) == (
        "08:00:00",
        "20:00:00",
    )
    assert current.require_double_opt_in is False


def test_a_half_send_window_is_refused(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        "/settings/email/",
        {
            "form": "settings",
            "sends_per_minute": "600",
            "frequency_cap": "3",
            "frequency_period": "week",
            "send_window_start": "08:00",
            "require_double_opt_in": "on",
        },
    )

    assert (
        "Give both the start and the end of the send window, or neither."
        in response.content.decode()
    )
    assert EmailSettings.objects.get().send_window_start is None


@pytest.mark.parametrize("role", ["marketer", "sales"])
def test_only_admins_see_email_settings(client, request, role):
    sender = SenderFactory.create()
    client.force_login(request.getfixturevalue(role))

    assert client.get("/settings/email/").status_code == 403
    assert client.post(f"/settings/email/senders/{sender.pk}/delete/").status_code == 403
    assert Sender.objects.filter(pk=sender.pk).exists()


def test_the_nav_shows_emails_to_builders_only(client, marketer, sales):
    client.force_login(marketer)
    assert '<a href="/emails/templates/">Emails</a>' in client.get("/").content.decode()
    client.force_login(UserFactory.create(username="rep", role="sales"))
    assert '<a href="/emails/templates/">Emails</a>' not in client.get("/").content.decode()


def test_the_list_shows_merge_tags_as_placeholders_and_escapes_the_rest(client, marketer):
    EmailTemplateFactory.create(
        subject='<b>Hi</b> {{ first_name | default: "there" }}, {{ owner.name }}'
    )
    client.force_login(marketer)

    listed = client.get("/emails/templates/").content.decode()

    assert (
        '&lt;b&gt;Hi&lt;/b&gt; <span class="lf-merge-tag" '
        'title="{{ first_name | default: &quot;there&quot; }}">first name</span>, '
        '<span class="lf-merge-tag" title="{{ owner.name }}">owner name</span>'
    ) in listed

"""The embedded default's mail backend keeps what would have been sent; the
"Sent emails" page shows it to admins as it would have arrived."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives, get_connection

from emails.models import OutboxMessage
from tests.factories import OutboxMessageFactory

pytestmark = pytest.mark.django_db

BACKEND = "emails.backends.OutboxBackend"


def test_the_default_backend_is_the_outbox_unless_configured():
    from config import settings as project_settings

    # pytest-django swaps in locmem for the tests; the project's own value is read here.
    assert project_settings.EMAIL_BACKEND == BACKEND


def test_the_outbox_keeps_from_to_subject_parts_headers_and_message_id():
    message = EmailMultiAlternatives(
        subject="Hallo Jana",
        body="Hallo Jana\n",
        from_email="Lena von Leadflow <lena@leadflow.example>",
        to=["jana@acme.example"],
        headers={
            "List-Unsubscribe": "<https://app.example/u/tok>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Message-ID": "<send-42@leadflow.example>",
        },
    )
    message.attach_alternative("<html><body><p>Hallo Jana</p></body></html>", "text/html")

    sent = get_connection(BACKEND).send_messages([message])

    stored = OutboxMessage.objects.get()
    assert sent == 1
    assert stored.from_email == "Lena von Leadflow <lena@leadflow.example>"
    assert stored.to == ["jana@acme.example"]
    assert stored.subject == "Hallo Jana"
    assert stored.text == "Hallo Jana\n"
    assert stored.html == "<html><body><p>Hallo Jana</p></body></html>"
    assert stored.message_id == "<send-42@leadflow.example>"
    assert stored.headers["List-Unsubscribe"] == "<https://app.example/u/tok>"
    assert stored.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert stored.headers["To"] == "jana@acme.example"
    assert "Content-Type" not in stored.headers


def test_a_message_without_message_id_gets_one_and_an_html_only_message_keeps_its_html():
    message = EmailMultiAlternatives(
        subject="Hi", body="<p>Hi</p>", from_email="a@acme.example", to=["b@acme.example"]
    )
    message.content_subtype = "html"

    get_connection(BACKEND).send_messages([message])

    stored = OutboxMessage.objects.get()
    assert stored.html == "<p>Hi</p>"
    assert stored.text == ""
    assert stored.message_id.startswith("<")
    assert stored.message_id.endswith(">")
    assert stored.headers["Message-ID"] == stored.message_id


def test_django_mail_through_the_outbox(settings):
    settings.EMAIL_BACKEND = BACKEND

    mail.send_mail("Reset", "Your link", "leadflow@localhost", ["admin@acme.example"])

    assert list(OutboxMessage.objects.values_list("subject", "to")) == [
        ("Reset", ["admin@acme.example"])
    ]


def test_sent_emails_list_is_paged_for_admins_in_few_queries(
    client, admin_user, django_assert_max_num_queries
):
    OutboxMessageFactory.create_batch(55, subject="Willkommen")
    newest = OutboxMessageFactory.create(subject="Newest one", to=["x@acme.example"])
    client.force_login(admin_user)

    with django_assert_max_num_queries(8):
        first = client.get("/emails/sent/")
    second = client.get("/emails/sent/?page=2")

    html = first.content.decode()
    assert first.status_code == 200
    assert len(re.findall(r'href="/emails/sent/\d+/"', html)) == 50
    assert html.index("Newest one") < html.index("Willkommen")
    assert f'href="/emails/sent/{newest.pk}/"' in html
    assert "Page 1 of 2" in html
    assert len(re.findall(r'href="/emails/sent/\d+/"', second.content.decode())) == 6


def test_a_sent_email_is_shown_as_rendered_with_headers_and_text(client, admin_user):
    message = OutboxMessageFactory.create(
        subject="Hallo <Jana>",
        html='<html><body><p class="x">Hallo &amp; willkommen</p></body></html>',
        text="Hallo & willkommen\n",
        headers={"List-Unsubscribe": "<https://app.example/u/tok>"},
    )
    client.force_login(admin_user)

    html = client.get(f"/emails/sent/{message.pk}/").content.decode()

    assert "Hallo &lt;Jana&gt;" in html
    assert (
        'sandbox="allow-popups allow-popups-to-escape-sandbox" srcdoc="&lt;html&gt;&lt;body&gt;'
        "&lt;p class=&quot;x&quot;&gt;Hallo &amp;amp; willkommen&lt;/p&gt;"
        "&lt;/body&gt;&lt;/html&gt;"
        '"'
    ) in html
    assert "<dt>List-Unsubscribe</dt>" in html
    assert "&lt;https://app.example/u/tok&gt;" in html
    assert (
        '<pre class="small mb-0 email-text" id="outbox-text">Hallo &amp; willkommen\n</pre>' in html
    )


@pytest.mark.parametrize("role", ["marketer", "sales"])
def test_only_admins_read_the_outbox(client, request, role):
    message = OutboxMessageFactory.create()
    client.force_login(request.getfixturevalue(role))

    assert client.get("/emails/sent/").status_code == 403
    assert client.get(f"/emails/sent/{message.pk}/").status_code == 403

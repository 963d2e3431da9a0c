"""The email templates API: CRUD and preview for admins and marketers, in the
project's error shape; sales reps have no access."""

from __future__ import annotations

import pytest

from emails.models import EmailTemplate
from tests.factories import EmailTemplateFactory, LeadFactory, SenderFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/email-templates/"
BLOCKS = [
    {"type": "heading", "text": 'Hi {{ first_name | default: "there" }}'},
    {"type": "text", "text": "Welcome to **{{ company_name }}**."},
]


def test_create_read_update_delete(marketer_api):
    sender = SenderFactory.create()

    created = marketer_api.post(
        URL,
        {
            "name": "Welcome",
            "subject": "Hi {{ first_name }}",
            "preheader": "Good to have you",
            "sender": sender.pk,
            "blocks": BLOCKS,
        },
    )
    pk = created.json()["id"]
    read = marketer_api.get(f"{URL}{pk}/")
    changed = marketer_api.patch(f"{URL}{pk}/", {"subject": "Hello {{ first_name }}"})
    deleted = marketer_api.delete(f"{URL}{pk}/")

    assert created.status_code == 201
    assert read.json() == {
        "id": pk,
        "name": "Welcome",
        "subject": "Hi {{ first_name }}",
        "preheader": "Good to have you",
        "sender": sender.pk,
        "kind": "marketing",
        "blocks": BLOCKS,
        "revision": 1,
        "created_at": read.json()["created_at"],
        "updated_at": read.json()["updated_at"],
    }
    assert changed.status_code == 200
    assert (changed.json()["subject"], changed.json()["revision"]) == ("Hello {{ first_name }}", 2)
    assert deleted.status_code == 204
    assert not EmailTemplate.objects.exists()


def test_unknown_fields_and_duplicate_names_in_the_error_shape(admin_api):
    EmailTemplateFactory.create(name="Welcome")

    response = admin_api.post(
        URL,
        {
            "name": "WELCOME",
            "subject": "Hi {{ firstname }}",
            "blocks": [{"type": "text", "text": "{{ custom.plan }}"}],
        },
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid",
            "message": response.json()["error"]["message"],
            "fields": {
                "name": ["Another template is already called “WELCOME”."],
                "subject": [
                    "There is no lead field called “firstname”. Did you mean “first_name”?"
                ],
                "blocks": ["There is no custom field called “plan”."],
            },
        }
    }


def test_preview_for_a_lead(marketer_api):
    template = EmailTemplateFactory.create(subject="Hi {{ first_name }}", blocks=BLOCKS)
    lead = LeadFactory.create(first_name="Jana", company_name="Acme & Co")

    response = marketer_api.post(f"{URL}{template.pk}/preview/", {"lead": lead.pk})
    missing = marketer_api.post(f"{URL}{template.pk}/preview/", {"lead": lead.pk + 1000})

    body = response.json()
    assert response.status_code == 200
    assert body["subject"] == "Hi Jana"
    assert "Welcome to <strong>Acme &amp; Co</strong>." in body["html"]
    assert body["text"].startswith("Hi Jana\n\nWelcome to **Acme & Co**.\n")
    assert missing.status_code == 400
    assert missing.json()["error"]["fields"] == {"lead": ["There is no lead with this id."]}


def test_list_in_few_queries(admin_api, django_assert_max_num_queries):
    EmailTemplateFactory.create_batch(30)

    with django_assert_max_num_queries(4):
        response = admin_api.get(URL)

    assert len(response.json()["results"]) == 30


def test_sales_reps_have_no_access(sales_api):
    template = EmailTemplateFactory.create()

    assert sales_api.get(URL).status_code == 403
    assert sales_api.get(f"{URL}{template.pk}/").status_code == 403
    assert sales_api.post(URL, {"name": "x", "subject": "y"}).status_code == 403
    assert sales_api.delete(f"{URL}{template.pk}/").status_code == 403
    assert EmailTemplate.objects.filter(pk=template.pk).exists()

"""The 503 page shown while the database or broker is away is readable on a
phone: it sets the viewport, and it stays a short page in the user's language."""

from __future__ import annotations

from django.test import RequestFactory
from django.utils import translation

from leads.middleware_outage import unavailable_response


def test_outage_page_fits_a_phone_in_german():
    with translation.override("de"):
        response = unavailable_response(RequestFactory().get("/leads/"))
    page = response.content.decode()
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert page.startswith('<!doctype html><html lang="de">')
    assert '<meta name="viewport" content="width=device-width,initial-scale=1">' in page
    assert "<h1>Vorübergehend nicht verfügbar</h1>" in page
    assert len(page) < 600


def test_outage_answer_of_the_api_stays_json():
    response = unavailable_response(RequestFactory().get("/api/v1/leads/"))
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert b"viewport" not in response.content

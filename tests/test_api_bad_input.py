"""Hostile bodies and paths get the API's error shape: deep nesting a 400, a huge
body a 413, unknown paths and methods JSON, on every operation of the schema."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.urls import path as url_path

from config import urls as config_urls
from leads.models import Event
from leads.services.api_keys import api_key_create
from tests.api_world import api_schema, api_world, concrete_path

pytestmark = pytest.mark.django_db

DEEP = "[" * 12_000 + "]" * 12_000
SEGMENT_PATHS = ["identify", "track", "page", "screen", "group", "alias", "batch", "import"]


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def _write_operations() -> list[tuple[str, str]]:
    """(method, path template) of every operation that takes a JSON body."""
    found = []
    for template, item in api_schema()["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                found.append((method, template))
    return found


def _error_code(response) -> str:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) >= {"code", "message", "fields"}
    return body["error"]["code"]


@pytest.mark.parametrize("path", SEGMENT_PATHS)
def test_deep_nesting_on_segment_endpoints_is_a_400(client, ingest_key, path):
    anonymous = client.post(f"/v1/{path}", DEEP, content_type="application/json")
    keyed = client.post(
        f"/v1/{path}", DEEP, content_type="application/json", HTTP_AUTHORIZATION=_basic(ingest_key)
    )

    assert (anonymous.status_code, _error_code(anonymous)) == (401, "unauthenticated")
    assert (keyed.status_code, _error_code(keyed)) == (400, "invalid")
    assert keyed.json()["error"]["message"] == "The JSON is nested more than 64 levels deep."


def test_nesting_up_to_the_limit_is_kept(client, ingest_key):
    properties: dict = {"leaf": 1}
    for _ in range(62):  # the body and 63 objects under "properties": 64 levels
        properties = {"x": properties}
    ok = client.post(
        "/v1/track",
        {"userId": "u-1", "event": "Deep", "properties": properties},
        content_type="application/json",
        HTTP_AUTHORIZATION=_basic(ingest_key),
    )
    too_deep = client.post(
        "/v1/track",
        {"userId": "u-1", "event": "Deep", "properties": {"x": properties}},
        content_type="application/json",
        HTTP_AUTHORIZATION=_basic(ingest_key),
    )

    assert ok.status_code == 200
    assert too_deep.status_code == 400


def test_deep_nesting_is_a_400_on_every_json_operation(full_api):
    world = api_world()
    answered = {}
    for method, template in _write_operations():
        path = concrete_path(template, world)
        response = getattr(full_api, method)(path, DEEP, content_type="application/json")
        answered[(method, template)] = (response.status_code, _error_code(response))

    not_parsed = {op: got for op, got in answered.items() if got != (400, "parse_error")}
    # Only the API-key endpoints read no body for a key: a key cannot manage keys.
    assert not_parsed == {
        ("post", "/api/v1/api-keys/"): (403, "permission_denied"),
    }
    assert len(answered) >= 20


def test_nan_is_refused_not_stored(full_api):
    response = full_api.post(
        "/api/v1/events/",
        '{"type": "track", "email": "a@b.example", "properties": {"x": NaN}}',
        content_type="application/json",
    )

    assert (response.status_code, _error_code(response)) == (400, "parse_error")


def test_a_6_mb_body_is_a_413_on_every_operation(full_api, client, ingest_key):
    world = api_world()
    body = "x" * (6 * 1024 * 1024)
    answered = set()
    for method, template in _write_operations():
        response = getattr(full_api, method)(
            concrete_path(template, world), body, content_type="application/json"
        )
        answered.add((response.status_code, _error_code(response)))
    for path in SEGMENT_PATHS:
        response = client.post(
            f"/v1/{path}",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=_basic(ingest_key),
        )
        answered.add((response.status_code, _error_code(response)))
    form = full_api.post("/api/v1/leads/", body, content_type="application/x-www-form-urlencoded")
    answered.add((form.status_code, _error_code(form)))

    assert answered == {(413, "too_large")}


def test_unknown_api_paths_and_methods_answer_json(full_api, client):
    for path in ("/api/v1/leads/null/segments/", "/api/v1/nope/", "/v1/nope", "/api/nope"):
        response = full_api.get(path)
        assert (response.status_code, _error_code(response)) == (404, "not_found"), path
    lead = full_api.get("/api/v1/leads/null/")
    assert (lead.status_code, _error_code(lead)) == (404, "not_found")

    wrong_method = client.get("/v1/track")
    assert (wrong_method.status_code, _error_code(wrong_method)) == (405, "method_not_allowed")
    assert wrong_method["Allow"] == "POST"
    drf_method = full_api.delete("/api/v1/flows/templates/")
    assert (drf_method.status_code, _error_code(drf_method)) == (405, "method_not_allowed")


def test_pages_keep_their_html_errors(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def _boom(request):
    raise RuntimeError("a bug")


# This module doubles as a URLconf: the app's URLs and error handlers, plus views
# that fail, to see what a bug looks like from outside.
urlpatterns = [
    url_path("api/v1/boom/", _boom),
    url_path("v1/boom", _boom),
    url_path("boom/", _boom),
    *config_urls.urlpatterns,
]
handler500 = config_urls.handler500


@pytest.mark.urls(__name__)
def test_a_server_error_on_an_api_path_answers_json(client):
    client.raise_request_exception = False

    api = client.get("/api/v1/boom/")
    ingest = client.post("/v1/boom")
    page = client.get("/boom/")

    assert (api.status_code, _error_code(api)) == (500, "server_error")
    assert (ingest.status_code, _error_code(ingest)) == (500, "server_error")
    assert (page.status_code, page["Content-Type"].split(";")[0]) == (500, "text/html")


def test_an_ingest_key_gets_json_errors_too(client):
    key = api_key_create(name="site", scope="ingest")[1]
    response = client.post(
        "/api/v1/leads/", DEEP, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )

    assert (response.status_code, _error_code(response)) == (403, "permission_denied")


def test_nul_in_any_json_text_is_refused_with_its_path(marketer_api):
    flow = marketer_api.post("/api/v1/flows/", {"name": "F"}, format="json").json()
    graph = {"nodes": [{"id": "t", "type": "lead.created", "config": {"x": ["ok", "a\x00"]}}]}

    response = marketer_api.put(
        f"/api/v1/flows/{flow['id']}/draft/", {"graph": graph, "revision": 0}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "graph.nodes[0].config.x[1]": ["Text may not contain NUL characters."]
    }


def test_the_schema_says_what_can_be_null_and_which_errors_come_back():
    schema = api_schema()
    components = schema["components"]["schemas"]
    paths = schema["paths"]

    assert components["Flow"]["properties"]["published_version"]["nullable"] is True
    assert components["Version"]["properties"]["created_by"]["nullable"] is True
    assert components["ScoreChange"]["properties"]["created_by"]["nullable"] is True
    assert sorted(paths["/api/v1/flows/{id}/draft/"]["put"]["responses"]) == [
        "200", "400", "401", "403", "404", "409", "413", "415"
    ]  # fmt: skip
    assert sorted(paths["/api/v1/flows/templates/"]["get"]["responses"]) == ["200", "401", "403"]
    assert paths["/api/v1/leads/"]["post"]["responses"]["413"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
    }
    for item in paths.values():
        for operation in item.values():
            assert {"401", "403"} <= set(operation["responses"])


def test_times_with_offsets_postgresql_refuses_are_taken_in_utc(full_api):
    listed = full_api.get(
        "/api/v1/events/", {"occurred_after": "0952-06-28T10:59:32-18:33", "page_size": 5}
    )
    edge = full_api.get("/api/v1/events/", {"occurred_before": "0001-01-01T00:00:00+01:00"})
    sent = full_api.post(
        "/api/v1/events/",
        {"type": "track", "name": "E", "user_id": "u", "occurred_at": "2026-12-01T10:00:00-18:30"},
        format="json",
    )

    assert listed.status_code == 200
    assert (edge.status_code, edge.json()["error"]["fields"]) == (
        400,
        {"occurred_before": ["The time is out of range."]},
    )
    assert sent.status_code == 202
    assert Event.objects.get(pk=sent.json()["ids"][0]).occurred_at == dt.datetime(
        2026, 12, 2, 4, 30, tzinfo=dt.UTC
    )


def test_ids_past_a_database_integer_are_refused(full_api):
    segment = full_api.post("/api/v1/segments/", {"name": "S", "kind": "static"}, format="json")

    response = full_api.post(
        f"/api/v1/segments/{segment.json()['id']}/members/add/", {"leads": [2**70]}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["leads[0]"]


def test_the_api_reads_json_bodies_only(full_api):
    response = full_api.post(
        "/api/v1/leads/", "email=a%40b.example", content_type="application/x-www-form-urlencoded"
    )

    assert (response.status_code, _error_code(response)) == (415, "unsupported_media_type")

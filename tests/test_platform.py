import datetime as dt
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.utils import timezone

from config.celery import app as celery_app
from leads.models import ApiKey
from leads.services.api_keys import api_key_check
from tests.factories import HeartbeatFactory

pytestmark = pytest.mark.django_db


def test_healthz_ok_with_a_worker_and_beat_seen(client):
    now = timezone.now()
    HeartbeatFactory.create(name="scheduler", seen_at=now - dt.timedelta(seconds=5))
    HeartbeatFactory.create(name="worker:celery@a", seen_at=now - dt.timedelta(seconds=3))
    HeartbeatFactory.create(name="worker:celery@b", seen_at=now - dt.timedelta(minutes=5))

    response = client.get("/healthz?require=worker,scheduler")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["broker"]) == ("ok", "ok", "ok")
    assert (body["worker"], body["workers"], body["scheduler"]) == ("ok", 1, "ok")


def test_healthz_degraded_without_a_worker_fails_only_when_required(client):
    now = timezone.now()
    HeartbeatFactory.create(name="scheduler", seen_at=now - dt.timedelta(seconds=5))
    HeartbeatFactory.create(name="worker:celery@a", seen_at=now - dt.timedelta(seconds=45))

    plain = client.get("/healthz")
    for_worker = client.get("/healthz?require=worker")
    for_beat = client.get("/healthz?require=scheduler")

    assert (plain.status_code, plain.json()["status"]) == (200, "degraded")
    assert (plain.json()["worker"], plain.json()["workers"]) == ("stale", 0)
    assert plain.json()["worker_seen_seconds_ago"] >= 45
    assert (for_worker.status_code, for_worker.json()["status"]) == (503, "degraded")
    assert for_beat.status_code == 200
    assert client.get("/healthz?require=web").status_code == 400


def test_healthz_degraded_when_nothing_was_ever_seen(client):
    body = client.get("/healthz").json()
    assert (body["status"], body["worker"], body["scheduler"]) == (
        "degraded",
        "never seen",
        "never seen",
    )


def test_healthz_503_when_broker_is_down(client):
    previous = celery_app.conf.broker_url
    celery_app.conf.update(broker_url="redis://127.0.0.1:1/0")
    try:
        response = client.get("/healthz")
    finally:
        celery_app.conf.update(broker_url=previous)
    assert response.status_code == 503
    assert (response.json()["status"], response.json()["broker"]) == ("error", "error")


def test_create_api_key_prints_only_the_key(capsys):
    call_command("create_api_key", "--name", "site", "--scope", "ingest")
    out = capsys.readouterr().out
    key = out.strip()
    assert out == key + "\n"
    row = api_key_check(key)
    assert row is not None
    assert (row.name, row.scope) == ("site", "ingest")
    assert key not in str(ApiKey.objects.values_list("key_hash", flat=True)[0])
    assert key.startswith(f"lf_{row.prefix}_")


def test_api_keys_endpoint_admin_only(admin_api, marketer_api):
    response = admin_api.post("/api/v1/api-keys/", {"name": "app", "scope": "full"}, format="json")
    assert response.status_code == 201
    key = response.json()["key"]
    assert api_key_check(key) is not None
    listed = admin_api.get("/api/v1/api-keys/").json()["results"]
    assert "key" not in listed[0]
    revoke = admin_api.post(f"/api/v1/api-keys/{listed[0]['id']}/revoke/")
    assert revoke.json()["revoked_at"] is not None
    assert api_key_check(key) is None
    assert marketer_api.get("/api/v1/api-keys/").status_code == 403


def test_no_api_key_can_mint_keys(full_api):
    response = full_api.post("/api/v1/api-keys/", {"name": "x", "scope": "full"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "API keys cannot manage API keys; sign in as an admin."
    )


def test_openapi_schema_and_docs_without_cdn(client, admin_user):
    assert client.get("/api/schema/?format=json").status_code == 401
    client.force_login(admin_user)
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/v1/leads/", "/api/v1/events/", "/api/v1/email-events/", "/api/v1/fields/"):
        assert path in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn" not in html.lower()


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "SECRET_KEY": "x" * 60 + "-production-secret-for-the-check-only",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "leads.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_COOKIES": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "LEADFLOW_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


SERVE_BUNDLE = """
import django
django.setup()
from django.conf import settings
from django.test import Client
response = Client().get("/static/build/app.js", HTTP_ACCEPT_ENCODING="gzip")
print(settings.WHITENOISE_USE_FINDERS, response.status_code, response.get("Content-Encoding"))
"""


def test_collected_static_files_are_served_compressed(tmp_path):
    """After ``collectstatic`` (the Docker image runs it) the bundle is served
    gzipped from the collected copy; before it, from the sources."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "LEADFLOW_DATA_DIR": str(tmp_path / "data"),
        "STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }

    def serve() -> str:
        result = subprocess.run(
            [sys.executable, "-c", SERVE_BUNDLE],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    before = serve()
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stderr
    after = serve()

    assert before == "True 200 None"
    assert after == "False 200 gzip"

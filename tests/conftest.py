from __future__ import annotations

import importlib
import os

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.utils import translation
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.scope import kept_forget
from leads.services.api_keys import api_key_create
from tests.factories import UserFactory

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Parallel runs (pytest-xdist): each worker has its own test database, and here
# its own keys in a shared Redis, so that one worker's sign-in counters (and their
# clean-up before every test) never reach another's. Set before any cache is used.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    django_settings.CACHES["default"]["KEY_PREFIX"] = worker


@pytest.fixture(scope="session", autouse=True)
def _no_persistent_connections(django_db_setup):
    """live_server threads must not keep connections open past their request, or
    the test database cannot be dropped at the end."""
    from django.db import connections

    for alias in connections:
        connections.settings[alias]["CONN_MAX_AGE"] = 0
        connections[alias].settings_dict["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _nothing_kept():
    """Every test starts as a new worker does: with no segment index or flow
    routes kept from an earlier batch (``core.scope.kept_while_same``)."""
    kept_forget()


@pytest.fixture(autouse=True)
def _celery_eager(request: pytest.FixtureRequest):
    """Unit tests run tasks inline; tests marked ``integration`` use a real worker."""
    eager = request.node.get_closest_marker("integration") is None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _no_inbox(request: pytest.FixtureRequest, settings):
    """Unit tests record tracked events in the database directly, on SQLite too;
    the embedded mode's inbox has tests of its own (tests/leads/test_inbox.py) and
    is used by the integration tests' processes."""
    if request.node.get_closest_marker("integration") is None:
        settings.EVENT_INBOX = False


@pytest.fixture(autouse=True)
def _no_throttle_counts():
    """Sign-in and rate counters live in the cache, which outlives a test (Redis
    outlives the run): every test starts with none. Only they are removed, so a
    broker sharing the Redis database keeps its messages."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
        keys = list(client.scan_iter(match=backend.make_key("throttle:*"), count=1000))
        if keys:
            client.delete(*keys)
    else:
        backend.clear()


@pytest.fixture(autouse=True)
def _default_language():
    """A request for a German user leaves German active in the thread (in a server
    the next request's middleware sets its own): every test starts and ends in the
    default language."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _migration_data(request: pytest.FixtureRequest) -> None:
    """A transactional test may start after another one's flush: put back the
    score categories and scoring settings a data migration seeds. (Roles are
    made by the user factory.)"""
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or (
        "transactional_db" in request.fixturenames or "live_server" in request.fixturenames
    )
    if transactional:
        request.getfixturevalue("transactional_db")
        importlib.import_module("scoring.migrations.0002_defaults").create_defaults(apps, None)


@pytest.fixture
def admin_user(db):
    return UserFactory.create(username="admin-t", role="admin")


@pytest.fixture
def marketer(db):
    return UserFactory.create(username="marketer-t", role="marketer")


@pytest.fixture
def sales(db):
    return UserFactory.create(username="sales-t", role="sales")


@pytest.fixture
def other_sales(db):
    return UserFactory.create(username="sales-2", role="sales")


def _client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def admin_api(admin_user) -> APIClient:
    return _client_for(admin_user)


@pytest.fixture
def marketer_api(marketer) -> APIClient:
    return _client_for(marketer)


@pytest.fixture
def sales_api(sales) -> APIClient:
    return _client_for(sales)


@pytest.fixture
def ingest_key(db) -> str:
    return api_key_create(name="ingest", scope="ingest")[1]


@pytest.fixture
def full_key(db) -> str:
    return api_key_create(name="full", scope="full")[1]


@pytest.fixture
def ingest_api(ingest_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ingest_key}")
    return client


@pytest.fixture
def full_api(full_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
    return client

"""The events' own insert (which speaks to psycopg directly on PostgreSQL) reports
a lost database as Django does, so the request answers 503 and the worker retries,
instead of failing the events it was processing."""

from __future__ import annotations

import psycopg
import pytest
from django.db import OperationalError, connection

from leads.outages import outage
from leads.services.events import events_record
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's own insert")
def test_a_session_ended_under_the_insert_is_an_outage():
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s["PASSWORD"] or None,
        dbname=s["NAME"],
        autocommit=True,
    ) as admin:
        # Our own session only.
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    with pytest.raises(OperationalError) as raised:
        events_record(events=[EventFactory.build(lead=None, idempotency_key="k-1")])
    connection.close()

    assert outage(raised.value) is True
    assert isinstance(raised.value.__cause__, psycopg.errors.AdminShutdown)

"""``core.prepared``: statements bound on the server, their conversion kept."""

from __future__ import annotations

import pytest
from django.db import connection

from core import prepared

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements"),
]


def test_a_statement_past_psycopgs_own_cache_limits_is_converted_once():
    # Given a statement like a segment check's: hundreds of columns and params,
    # far over 4,096 characters and 50 parameters.
    columns = ", ".join(f"%s::int + {n} AS column_{n}" for n in range(300))
    sql = f"SELECT {columns}"
    assert len(sql) > 4096
    converted = prepared._cursor_class()._query_cls
    before = _conversions()
    # When it runs three times with other values.
    results = [prepared.fetch(sql, [run] * 300) for run in range(3)]
    # Then each run answers with its own values, and the placeholders were
    # converted the first time only.
    assert [row[0][:3] for row in results] == [(0, 1, 2), (1, 2, 3), (2, 3, 4)]
    assert [len(row[0]) for row in results] == [300, 300, 300]
    assert _conversions() - before == 1
    assert converted.__name__ == "KeptQuery"


def test_a_statement_without_rows_returns_none_and_named_params_work():
    assert prepared.fetch("CREATE TEMPORARY TABLE t_prepared (n int)", []) == []
    assert prepared.fetch("INSERT INTO t_prepared VALUES (%(n)s), (%(n)s)", {"n": 7}) == []
    assert prepared.fetch("SELECT sum(n) FROM t_prepared WHERE n = %(n)s", {"n": 7}) == [(14,)]


def _conversions() -> int:
    """How many statements the kept conversion has converted (its misses)."""
    return int(prepared.conversion.cache_info().misses)


@pytest.mark.parametrize("table", ["flows_enrollment", "flows_steprun", "scoring_scorechange"])
def test_the_sequence_named_for_a_table_is_the_one_that_numbers_it(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (qualified,) = cursor.fetchone()
    assert qualified.split(".")[-1] == prepared.sequence(table)

"""Statements of the worker's hot path, bound on the server and prepared.

Django binds parameters on the client, so PostgreSQL parses and plans every
statement anew, and its ORM takes longer to build a statement than the database
takes to run it. The few statements every event runs are written once, as SQL;
psycopg binds their values on the server and prepares them after a few uses
(``prepare_threshold`` in the settings), and the session plans each prepared
statement once (``session_start``). Rows become model instances through
the fields' own converters, as the ORM makes them. PostgreSQL only: on SQLite
the callers keep the ORM.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model

M = TypeVar("M", bound=Model)


def enabled() -> bool:
    return connection.vendor == "postgresql"


@functools.cache
def _cursor_class() -> type[Any]:
    """psycopg's cursor, keeping every statement's conversion.

    psycopg turns a statement's ``%s`` into ``$1``… at each run and keeps the
    result only for statements under 4,096 characters and 50 parameters, so
    that an ORM's ever-new bulk inserts do not fill its cache. Ours are a
    bounded set run again and again, and a segment check of a hundred columns
    is over both limits: converting it anew was a tenth of the worker's time
    with 500 segments (bench/account.py). The conversion is psycopg's own; only
    the cache is ours. Its internals move between versions: ``tests/core``
    runs a statement through this cursor, so a change there fails the suite,
    not a worker."""
    from psycopg import Cursor
    from psycopg._queries import PostgresQuery

    class KeptQuery(PostgresQuery):
        def convert(self, query: Any, vars: Any) -> None:
            if vars is None:
                super().convert(query, vars)
                return
            self.query, self._want_formats, self._order, self._parts = conversion(
                self._ensure_bytes(query), self._tx.encoding
            )
            self.dump(vars)

    class KeptCursor(Cursor[Any]):
        _query_cls = KeptQuery

    return KeptCursor


# The statements whose conversion is kept: the fixed ones, and the segment
# checks' (``segments.check.STATEMENTS_KEPT`` of them at most).
STATEMENTS_CONVERTED = 1024


@functools.lru_cache(maxsize=STATEMENTS_CONVERTED)
def conversion(query: bytes, encoding: str) -> Any:
    """psycopg's conversion of a statement's placeholders, kept."""
    from psycopg._queries import _query2pg_nocache

    return _query2pg_nocache(query, encoding)


# Prepared statements kept per connection (psycopg's default is 100): the fixed
# ones and the segment checks' (``segments.check.STATEMENTS_KEPT`` at most).
PREPARED_KEPT = 600


def session_start(*, connection: Any, **kwargs: Any) -> None:
    """At a new PostgreSQL session that prepares statements (Django's
    ``connection_created``, in autocommit, so that no rollback undoes it):
    keep more of them, and plan each once. By default PostgreSQL plans a
    prepared statement again at each of its first five runs, and then at every
    run when its plan without the values looks dearer than those. A segment
    check's plan costs five times its run (a column per segment, the events
    table's partitions), and the plan for one lead's row is the same whatever
    the lead."""
    if connection.vendor != "postgresql":
        return
    raw = connection.connection
    if raw.prepare_threshold is None:
        # A pooler that cannot keep prepared statements.
        return
    raw.prepared_max = PREPARED_KEPT
    raw.execute("SET plan_cache_mode = force_generic_plan")


def fetch(
    sql: str, params: Sequence[Any] | Mapping[str, Any], *, at_once: bool = False
) -> list[tuple[Any, ...]]:
    """Run one statement on Django's connection, in its transaction; its rows
    (none for a statement without RETURNING). Errors are Django's, and the
    statement is logged where Django logs queries (tests, DEBUG). ``at_once``:
    prepared at its first run, not after a few (when the connection prepares
    at all): for statements that are many and each run a few times."""
    from psycopg import pq

    # The wrapper itself, once: every attribute read through Django's
    # ``connection`` proxy looks the connection up again (a few microseconds,
    # five times a statement, tens of statements an event).
    wrapper = connections[DEFAULT_DB_ALIAS]
    wrapper.ensure_connection()
    wrapper.validate_no_broken_transaction()
    raw = wrapper.connection
    began = time.monotonic()
    with wrapper.wrap_database_errors, _cursor_class()(raw) as cursor:
        cursor.execute(sql, params, prepare=True if at_once and raw.prepare_threshold else None)
        # Not ``cursor.description``: it builds an object per column, and a
        # segment check has hundreds.
        result = cursor.pgresult
        rows = (
            cursor.fetchall()
            if result is not None and result.status == pq.ExecStatus.TUPLES_OK
            else []
        )
    if wrapper.queries_logged:
        wrapper.queries_log.append({"sql": sql, "time": f"{time.monotonic() - began:.3f}"})
    return rows


def sequence(table: str) -> str:
    """The sequence that numbers ``table``'s rows, as PostgreSQL names that of
    an identity or serial ``id`` column (``tests/test_prepared.py`` checks it for the
    tables that use it): a statement that writes rows of several tables that
    refer to each other draws their ids from it first."""
    return f"{table}_id_seq"


@dataclass
class Within:
    """The start of a statement that another module's keyed write finishes, so
    that the two are one round trip: ``ctes`` (``name AS (…)``, separated by
    commas, with the named parameters ``params``) run first; the write keys its
    row with ``key``, an SQL expression over ``rows`` (some of those CTEs, of
    one row each), and hands the values of ``returning`` (columns of them) to
    ``done``, which returns the key as written. ``written`` tells whether the
    statement ran."""

    ctes: str
    params: Mapping[str, Any]
    rows: str
    key: str
    returning: str
    done: Callable[[Sequence[Any]], str]
    written: bool = False

    def finish(self, values: Sequence[Any]) -> str:
        self.written = True
        return self.done(values)


_converters: dict[type[Model], list[tuple[Any, list[Callable[..., Any]]]]] = {}


def columns(model: type[Model], alias: str = "") -> str:
    """The model's columns in field order, as ``instance`` reads them."""
    quote = connection.ops.quote_name
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + quote(f.column) for f in model._meta.concrete_fields)


def instance(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from a row of ``columns(model)``, as the ORM loads it."""
    if model not in _converters:
        fields: list[Any] = list(model._meta.concrete_fields)
        _converters[model] = [(f, f.get_db_converters(connection)) for f in fields]
    converted = []
    for (field, converters), value in zip(_converters[model], values, strict=True):
        for convert in converters:
            value = convert(value, field, connection)
        converted.append(value)
    # Every column is given, so from_db needs no field names.
    return model.from_db(connection.alias, (), converted)

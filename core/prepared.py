"""Statements of the worker's hot path, bound on the server and prepared.

Django binds parameters on the client, so PostgreSQL parses and plans every
statement anew, and its ORM takes longer to build a statement than the database
takes to run it. The few statements every event runs are written once, as SQL;
psycopg binds their values on the server and prepares them after a few uses
(``prepare_threshold`` in the settings). Rows become model instances through
the fields' own converters, as the ORM makes them. PostgreSQL only: on SQLite
the callers keep the ORM.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)


def enabled() -> bool:
    return connection.vendor == "postgresql"


def fetch(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement on Django's connection, in its transaction; its rows
    (none for a statement without RETURNING). Errors are Django's, and the
    statement is logged where Django logs queries (tests, DEBUG)."""
    from psycopg import Cursor

    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    began = time.monotonic()
    with connection.wrap_database_errors, Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - began:.3f}"})
    return rows


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

"""Standard lead fields, custom field definitions and typed value cleaning."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from leads.models import FieldDefinition, FieldType

# Fields a trait, a CSV column or an API write may set directly on Lead.
STANDARD_FIELDS: dict[str, str] = {
    "email": "text",
    "external_id": "text",
    "first_name": "text",
    "last_name": "text",
    "phone": "text",
    "job_title": "text",
    "company_name": "text",
    "company_size": "number",
    "industry": "text",
    "country": "text",
    "city": "text",
    "stage": "choice",
    "unsubscribed": "boolean",
}
RESERVED_KEYS = set(STANDARD_FIELDS) | {"id", "owner", "tags", "score", "custom_fields"}


class FieldValueError(ValueError):
    pass


def custom_definitions() -> dict[str, FieldDefinition]:
    return {d.key: d for d in FieldDefinition.objects.all()}


def custom_value_clean(
    definition: FieldDefinition, value: Any, *, lenient: bool = False
) -> str | int | float | bool | None:
    """Return ``value`` as stored for this field type, or raise FieldValueError.

    ``lenient`` accepts the string forms that arrive in CSV files and in traits
    ("42", "true", "2026-03-01T10:00:00Z"); API writes are strict JSON types.
    """
    if value is None:
        return None
    kind = definition.type
    if kind == FieldType.TEXT:
        return _text_clean(value, lenient=lenient)
    if kind == FieldType.NUMBER:
        return _number_clean(value, lenient=lenient)
    if kind == FieldType.BOOLEAN:
        return _boolean_clean(value, lenient=lenient)
    if kind == FieldType.DATE:
        return _date_clean(value, lenient=lenient)
    if kind == FieldType.CHOICE:
        if isinstance(value, str) and value in definition.options:
            return value
        allowed = ", ".join(map(str, definition.options))
        raise FieldValueError(f"{value!r} is not one of: {allowed}.")
    raise FieldValueError(f"Unknown field type {kind!r}.")


def _text_clean(value: Any, *, lenient: bool) -> str:
    if isinstance(value, str):
        return value
    if lenient and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FieldValueError("Expected text.")


def _number_clean(value: Any, *, lenient: bool) -> int | float:
    if isinstance(value, bool):
        raise FieldValueError("Expected a number.")
    if isinstance(value, int | float):
        return value
    if lenient and isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise FieldValueError(f"{value!r} is not a number.") from None
        if not number.is_finite():
            raise FieldValueError(f"{value!r} is not a number.")
        return int(number) if number == number.to_integral_value() else float(number)
    raise FieldValueError("Expected a number.")


def _boolean_clean(value: Any, *, lenient: bool) -> bool:
    if isinstance(value, bool):
        return value
    if lenient and isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()]
    raise FieldValueError("Expected true or false.")


def _date_clean(value: Any, *, lenient: bool) -> str:
    """A date as YYYY-MM-DD; leniently also the date of a date and time."""
    if not isinstance(value, str):
        raise FieldValueError("Expected a date as YYYY-MM-DD.")
    text = value.strip()
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    if lenient:
        try:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
        except ValueError:
            pass
    raise FieldValueError(f"{value!r} is not a date as YYYY-MM-DD.")


BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def choice_options_clean(field_type: str, options: Any) -> list[str]:
    if field_type != FieldType.CHOICE:
        if options:
            raise FieldValueError("Only choice fields have options.")
        return []
    if not isinstance(options, list) or not options:
        raise FieldValueError("A choice field needs a non-empty list of options.")
    if not all(isinstance(o, str) and o for o in options):
        raise FieldValueError("Options must be non-empty strings.")
    if len(set(options)) != len(options):
        raise FieldValueError("Options must be unique.")
    return list(options)

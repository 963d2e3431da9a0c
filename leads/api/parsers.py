"""The API's JSON parser: bounded in size and depth, so a hostile body gets a 400 or
413 in the API's error shape instead of a RecursionError or a huge read."""

from __future__ import annotations

import codecs
from typing import Any

from django.conf import settings
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError, ValidationError

from leads.services.ingest import JsonTooDeep, json_loads_limited


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"A request body is limited to {limit} bytes.")


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # DRF hands over the request itself, which reads past Django's upload limit.
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        try:
            text = codecs.decode(raw, encoding)
            data = json_loads_limited(text)
        except JsonTooDeep as exc:
            raise ParseError(str(exc)) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        # PostgreSQL's text and jsonb cannot hold NUL; JSON can only carry it escaped.
        if "\\u0000" in text and (path := nul_path(data)) is not None:
            raise ValidationError({path: ["Text may not contain NUL characters."]})
        return data


def nul_path(value: Any, path: str = "") -> str | None:
    """The path (``a.b[2]``) of the first text holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return inner
            if (found := nul_path(item, inner)) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := nul_path(item, f"{path}[{index}]")) is not None:
                return found
    return None

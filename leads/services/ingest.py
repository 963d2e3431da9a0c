"""Turning inbound payloads (Segment Tracking API, our REST events) into Event rows.

Validation here is hand-written rather than a DRF serializer per event: a batch of
500 events is parsed in a few milliseconds this way, which is what keeps ingest
close to the speed of a raw insert (see bench/ingest.py).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import json
import zlib
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest

from leads.models import Event

SEGMENT_SOURCE = "segment"
# Written by the server into the context of an event sent with an ingest key
# (a client's own value under this name is dropped): processing reads it to
# decide what the event may change on a lead that exists.
INGEST_MARK = "leadflow"
# The inbound types that write a lead's fields: the ones the mark matters for.
FIELD_WRITING_TYPES = ("identify", "group")
# Where a Segment message carries its identity verification.
USER_HASH = "userHash"
SEGMENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 255
# Timestamps outside these bounds are typos or broken clocks, not history.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


class IngestError(Exception):
    """A payload we refuse: ``fields`` maps a path to its messages."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class PayloadTooLarge(Exception):
    pass


# Deeper than any real payload; recursive code after the parse (validation, JSON
# encoding for the database) stays far from Python's recursion limit.
MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    def __init__(self, max_depth: int = MAX_JSON_DEPTH):
        super().__init__(f"The JSON is nested more than {max_depth} levels deep.")


def _nested_deeper_than(value: Any, max_depth: int) -> bool:
    # A loop, not recursion: the value may be as deep as the parser allowed.
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON.")


def json_loads_limited(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for bodies from outside: at most ``max_depth`` levels of arrays
    and objects (``JsonTooDeep``, a ValueError), and no NaN or Infinity, which
    PostgreSQL's jsonb cannot store."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise JsonTooDeep(max_depth) from None
    if _nested_deeper_than(value, max_depth):
        raise JsonTooDeep(max_depth)
    return value


def read_json_body(request: HttpRequest, *, max_bytes: int) -> tuple[Any, int, bool]:
    """Parse the request body as JSON, inflating gzip/deflate, never past ``max_bytes``.

    Returns the parsed body, its size in bytes once inflated, and whether it may
    contain a NUL character (JSON can only carry one escaped)."""
    encoding = request.headers.get("Content-Encoding", "").lower().strip()
    length = request.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes and not encoding:
        raise PayloadTooLarge()
    raw = request.read(max_bytes + 1)
    if len(raw) > max_bytes:
        # Compressed or not, a body this long inflates to more than the limit.
        raise PayloadTooLarge()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
            inflater = zlib.decompressobj(wbits)
            # Inflate at most one byte past the limit: a small bomb stays small.
            raw = inflater.decompress(raw, max_bytes + 1)
        except (zlib.error, gzip.BadGzipFile):
            raise IngestError("The body is not valid gzip.") from None
        if inflater.unconsumed_tail:
            raise PayloadTooLarge()
    elif encoding and encoding != "identity":
        raise IngestError(f"Unsupported Content-Encoding {encoding!r}.")
    if len(raw) > max_bytes:
        raise PayloadTooLarge()
    try:
        return json_loads_limited(raw), len(raw), b"\\u0000" in raw
    except JsonTooDeep as exc:
        raise IngestError(str(exc)) from None
    except (ValueError, UnicodeDecodeError):
        raise IngestError("The body is not valid JSON.") from None


def parse_timestamp(value: Any, path: str) -> dt.datetime:
    """An ISO 8601 timestamp as an aware datetime (naive means UTC)."""
    if not isinstance(value, str):
        raise IngestError("Bad timestamp.", {path: ["Expected an ISO 8601 timestamp string."]})
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise IngestError(
            "Bad timestamp.", {path: [f"{value!r} is not an ISO 8601 timestamp."]}
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        parsed = parsed.astimezone(dt.UTC)
    except OverflowError:
        parsed = dt.datetime.min.replace(tzinfo=dt.UTC)
    if not EARLIEST <= parsed <= LATEST:
        raise IngestError("Bad timestamp.", {path: [f"{value!r} is out of range."]})
    return parsed


def occurred_at_for(
    message: dict[str, Any], *, received_at: dt.datetime, sent_at: dt.datetime | None
) -> dt.datetime:
    """When the event happened, corrected for the sender's clock (Segment's rule).

    The sender's own clock time of the event (``originalTimestamp``, else
    ``timestamp``) is trusted only relative to its ``sentAt``:
    ``receivedAt - (sentAt - originalTimestamp)``. Without ``sentAt`` the
    sender's time is taken as it is; without either, ``receivedAt``.
    """
    base_value = message.get("originalTimestamp")
    path = "originalTimestamp"
    if base_value is None:
        base_value, path = message.get("timestamp"), "timestamp"
    if base_value is None:
        return received_at
    base = parse_timestamp(base_value, path)
    if sent_at is None:
        return base
    corrected = received_at - (sent_at - base)
    if not EARLIEST <= corrected <= LATEST:
        raise IngestError("Bad timestamp.", {path: ["Out of range once corrected by sentAt."]})
    return corrected


def _identifier(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise IngestError("Bad identifier.", {key: ["Expected a string."]})
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise IngestError("Bad identifier.", {key: [f"Longer than {MAX_ID_LENGTH} characters."]})
    return text


def _object(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IngestError("Bad payload.", {key: ["Expected an object."]})
    return value


def _name(message: dict[str, Any], key: str, *, required: bool) -> str:
    value = message.get(key)
    if value is None or value == "":
        if required:
            raise IngestError("Missing field.", {key: ["This field is required."]})
        return ""
    if not isinstance(value, str):
        raise IngestError("Bad payload.", {key: ["Expected a string."]})
    if len(value) > MAX_NAME_LENGTH:
        raise IngestError("Bad payload.", {key: [f"Longer than {MAX_NAME_LENGTH} characters."]})
    return value


def _content_key(message: dict[str, Any]) -> str:
    # Without a messageId, an exact resend of the same message is still one event.
    encoded = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(encoded.encode()).hexdigest()


def segment_message_to_event(
    message: Any,
    *,
    type_: str | None,
    received_at: dt.datetime,
    sent_at: dt.datetime | None,
    has_nul: bool = True,
) -> Event:
    """Validate one Segment Tracking API message and build its (unsaved) Event.

    ``has_nul=False`` says the raw body held no escaped NUL, which spares the scan.
    """
    if not isinstance(message, dict):
        raise IngestError("Bad payload.", {"": ["Expected an object."]})
    kind = type_ or message.get("type")
    if kind not in SEGMENT_TYPES:
        raise IngestError(
            "Unknown message type.", {"type": [f"Expected one of: {', '.join(SEGMENT_TYPES)}."]}
        )
    user_id = _identifier(message, "userId")
    anonymous_id = _identifier(message, "anonymousId")
    if not user_id and not anonymous_id:
        raise IngestError(
            "Missing identity.", {"userId": ["Either userId or anonymousId is required."]}
        )
    context = _object(message, "context")
    if message.get("sentAt") is not None:
        sent_at = parse_timestamp(message["sentAt"], "sentAt")
    occurred_at = occurred_at_for(message, received_at=received_at, sent_at=sent_at)
    email = ""
    name = ""
    properties: dict[str, Any]
    if kind == "identify":
        properties = _object(message, "traits") or dict(_object(context, "traits"))
        email = valid_email(properties.get("email")) or ""
    else:
        name, properties = _name_and_properties(kind, message, context, user_id=user_id)
    if has_nul and contains_nul(message):
        raise IngestError("Bad payload.", {"": ["Text may not contain NUL characters."]})
    message_id = _identifier(message, "messageId")
    return Event(
        type=kind,
        name=name,
        properties=properties,
        context=context,
        user_id=user_id,
        anonymous_id=anonymous_id,
        email=email,
        occurred_at=occurred_at,
        received_at=received_at,
        source=SEGMENT_SOURCE,
        idempotency_key=message_id or _content_key(message),
    )


def _name_and_properties(
    kind: str, message: dict[str, Any], context: dict[str, Any], *, user_id: str
) -> tuple[str, dict[str, Any]]:
    """The event's name and properties for a message that is not an ``identify``."""
    if kind == "track":
        return _name(message, "event", required=True), _object(message, "properties")
    if kind in ("page", "screen"):
        name = _name(message, "name", required=False)
        return name, _page_properties(kind, message, context)
    if kind == "group":
        group_id = _identifier(message, "groupId")
        if not group_id:
            raise IngestError("Missing field.", {"groupId": ["This field is required."]})
        return group_id, {"group_id": group_id, "traits": _object(message, "traits")}
    # alias
    previous_id = _identifier(message, "previousId")
    if not previous_id:
        raise IngestError("Missing field.", {"previousId": ["This field is required."]})
    if not user_id:
        raise IngestError("Missing field.", {"userId": ["This field is required."]})
    return "", {"previous_id": previous_id}


def _page_properties(kind: str, message: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A page's or screen's properties, with what the page context says about the
    page (url, path, title, referrer) where the properties do not, and the
    category."""
    properties = dict(_object(message, "properties"))
    page = _object(context, "page") if kind == "page" else {}
    for key in ("url", "path", "title", "referrer"):
        if key not in properties and isinstance(page.get(key), str):
            properties[key] = page[key]
    if message.get("category") is not None:
        properties.setdefault("category", message.get("category"))
    return properties


def message_size_ok(message: Any) -> bool:
    encoded = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(encoded.encode()) <= settings.INGEST_MAX_EVENT_BYTES


def valid_email(value: Any) -> str | None:
    """``value`` as a lower-cased address if it is one, else None (then it is a
    trait like any other, never an identifier)."""
    if not isinstance(value, str):
        return None
    address = value.strip().lower()
    if not address or len(address) > 254:
        return None
    try:
        validate_email(address)
    except ValidationError:
        return None
    return address


def contains_nul(value: Any) -> bool:
    """PostgreSQL text and jsonb cannot hold NUL: such input is refused, not failed."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


def identity_hash(*, secret: str, user_id: str, email: str) -> str:
    """Identity verification: the hex HMAC-SHA256 of the user id, or of the
    lower-cased email when the call has no user id, keyed by the team's secret.
    Your server computes it and puts it in the page beside the snippet."""
    subject = user_id or email.strip().lower()
    return hmac.new(secret.encode(), subject.encode(), hashlib.sha256).hexdigest()


def ingest_context(
    context: dict[str, Any],
    *,
    ingest: bool,
    secret: str,
    user_id: str,
    email: str,
    user_hash: Any,
) -> dict[str, Any]:
    """The context an event is stored with: the verification hash taken out,
    and for an ingest key the mark saying whether the hash proved who it is."""
    stored = {k: v for k, v in context.items() if k not in (INGEST_MARK, USER_HASH)}
    if ingest:
        verified = bool(
            secret
            and isinstance(user_hash, str)
            and (user_id or email)
            and hmac.compare_digest(
                identity_hash(secret=secret, user_id=user_id, email=email).encode(),
                user_hash.strip().lower().encode(),
            )
        )
        stored[INGEST_MARK] = {"key": "ingest", "verified": verified}
    return stored


def ingest_restricted(event: Event) -> bool:
    """Sent with an ingest key and no valid identity verification: it may fill a
    lead's empty fields and add tags, never overwrite (``apply.fill_only``)."""
    mark = event.context.get(INGEST_MARK) if isinstance(event.context, dict) else None
    return isinstance(mark, dict) and mark.get("key") == "ingest" and not mark.get("verified")

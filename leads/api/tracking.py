"""Segment-compatible Tracking API: ``/v1/identify``, ``track``, ``page``, ``screen``,
``group``, ``alias`` and ``batch``, authenticated the way Segment's SDKs do it (the
write key as the HTTP Basic username, or ``writeKey`` in the body).

A batch is not all-or-nothing: the SDKs retry a rejected batch as a whole, so one
bad event would block every good one forever. Good events are stored; bad ones are
reported by index and dropped. A batch with no good event at all is a 400.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from leads.api.errors import error_response
from leads.models import ApiKey, ApiScope, Event
from leads.services.api_keys import api_key_check
from leads.services.inbox import events_receive
from leads.services.ingest import (
    FIELD_WRITING_TYPES,
    INGEST_MARK,
    USER_HASH,
    IngestError,
    PayloadTooLarge,
    ingest_context,
    message_size_ok,
    parse_timestamp,
    read_json_body,
    segment_message_to_event,
)
from leads.services.throttle import api_key_rate_wait
from leads.services.users import integration_settings


def _key_from_headers(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0]
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return None


def _authenticate(request: HttpRequest, body: Any) -> ApiKey | None:
    key = _key_from_headers(request)
    if key is None and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        key = body["writeKey"]
    return api_key_check(key) if key else None


def _refused(key: ApiKey | None) -> JsonResponse | None:
    """401 without a valid key, 429 when the key is over its rate; None to go on."""
    if key is None:
        response = error_response(401, "unauthenticated", "A valid write key is required.")
        response["WWW-Authenticate"] = 'Basic realm="leadflow"'
        return response
    wait = api_key_rate_wait(key_id=key.pk)
    if wait:
        response = error_response(
            429,
            "throttled",
            f"This key sent more than {settings.INGEST_RATE_LIMIT} requests in "
            f"{settings.INGEST_RATE_WINDOW} seconds; retry in {wait} seconds.",
        )
        response["Retry-After"] = str(wait)
        return response
    return None


def _mark(events: list[Event], key: ApiKey) -> None:
    """Take the identity verification out of each context, and mark what an
    ingest key sent (see ``ingest_context``)."""
    ingest = key.scope == ApiScope.INGEST
    secret = ""
    if ingest and any(USER_HASH in event.context for event in events):
        secret = integration_settings().identity_secret
    for event in events:
        marked = ingest and event.type in FIELD_WRITING_TYPES
        if not marked and USER_HASH not in event.context and INGEST_MARK not in event.context:
            continue
        event.context = ingest_context(
            event.context,
            ingest=marked,
            secret=secret,
            user_id=event.user_id,
            email=event.email,
            user_hash=event.context.get(USER_HASH),
        )


def _unauthorized() -> JsonResponse:
    response = error_response(401, "unauthenticated", "A valid write key is required.")
    response["WWW-Authenticate"] = 'Basic realm="leadflow"'
    return response


def _post_only(view: Callable[[HttpRequest], JsonResponse]) -> Callable[..., JsonResponse]:
    """Like ``require_POST``, with the 405 in the API's error shape."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest) -> JsonResponse:
        if request.method != "POST":
            response = error_response(
                405, "method_not_allowed", f'Method "{request.method}" not allowed.'
            )
            response["Allow"] = "POST"
            return response
        return view(request)

    return wrapper


def _single(request: HttpRequest, type_: str) -> JsonResponse:
    try:
        body, _, has_nul = read_json_body(request, max_bytes=settings.INGEST_MAX_EVENT_BYTES)
    except PayloadTooLarge:
        return error_response(
            413, "too_large", f"An event is limited to {settings.INGEST_MAX_EVENT_BYTES} bytes."
        )
    except IngestError as exc:
        if _authenticate(request, None) is None:
            return _unauthorized()
        return error_response(400, "invalid", exc.message, exc.fields)
    key = _authenticate(request, body)
    refused = _refused(key)
    if refused is not None or key is None:
        return refused or _unauthorized()
    try:
        event = segment_message_to_event(
            body, type_=type_, received_at=timezone.now(), sent_at=None, has_nul=has_nul
        )
    except IngestError as exc:
        return error_response(400, "invalid", exc.message, exc.fields)
    _mark([event], key)
    events_receive(events=[event])
    return JsonResponse({"success": True})


def _single_view(type_: str) -> Callable[[HttpRequest], JsonResponse]:
    @csrf_exempt
    @_post_only
    def view(request: HttpRequest) -> JsonResponse:
        return _single(request, type_)

    view.__name__ = f"segment_{type_}"
    return view


identify = _single_view("identify")
track = _single_view("track")
page = _single_view("page")
screen = _single_view("screen")
group = _single_view("group")
alias = _single_view("alias")


@csrf_exempt
@_post_only
def batch(request: HttpRequest) -> JsonResponse:
    try:
        body, body_size, has_nul = read_json_body(
            request, max_bytes=settings.INGEST_MAX_BATCH_BYTES
        )
    except PayloadTooLarge:
        return error_response(
            413, "too_large", f"A batch is limited to {settings.INGEST_MAX_BATCH_BYTES} bytes."
        )
    except IngestError as exc:
        if _authenticate(request, None) is None:
            return _unauthorized()
        return error_response(400, "invalid", exc.message, exc.fields)
    key = _authenticate(request, body)
    refused = _refused(key)
    if refused is not None or key is None:
        return refused or _unauthorized()
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        return error_response(
            400, "invalid", 'Expected {"batch": [...]}.', {"batch": ["Required."]}
        )
    messages = body["batch"]
    if len(messages) > settings.INGEST_MAX_BATCH_EVENTS:
        return error_response(
            413, "too_large", f"A batch holds at most {settings.INGEST_MAX_BATCH_EVENTS} events."
        )
    received_at = timezone.now()
    sent_at = None
    try:
        if body.get("sentAt") is not None:
            sent_at = parse_timestamp(body["sentAt"], "sentAt")
    except IngestError as exc:
        return error_response(400, "invalid", exc.message, exc.fields)
    # A body within the per-event limit cannot hold an oversize event.
    check_sizes = body_size > settings.INGEST_MAX_EVENT_BYTES
    events, rejected = _batch_events(
        messages, received_at=received_at, sent_at=sent_at, check_sizes=check_sizes, has_nul=has_nul
    )
    if messages and not events:
        return _nothing_valid(rejected)
    _mark(events, key)
    events_receive(events=events)
    return JsonResponse({"success": True, "accepted": len(events), "rejected": rejected})


def _batch_events(
    messages: list[Any],
    *,
    received_at: dt.datetime,
    sent_at: dt.datetime | None,
    check_sizes: bool,
    has_nul: bool,
) -> tuple[list[Event], list[dict[str, Any]]]:
    """The events of a batch's valid messages, and what is wrong with each other
    message (by its index in the batch)."""
    events: list[Event] = []
    rejected: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if check_sizes and not message_size_ok(message):
            rejected.append(
                {
                    "index": index,
                    "code": "too_large",
                    "message": f"An event is limited to {settings.INGEST_MAX_EVENT_BYTES} bytes.",
                    "fields": {},
                }
            )
            continue
        try:
            events.append(
                segment_message_to_event(
                    message,
                    type_=None,
                    received_at=received_at,
                    sent_at=sent_at,
                    has_nul=has_nul,
                )
            )
        except IngestError as exc:
            paths = {
                f"batch[{index}].{k}" if k else f"batch[{index}]": v for k, v in exc.fields.items()
            }
            rejected.append(
                {"index": index, "code": "invalid", "message": exc.message, "fields": paths}
            )
    return events, rejected


def _nothing_valid(rejected: list[dict[str, Any]]) -> JsonResponse:
    """The answer to a batch with no valid message: every message's errors."""
    fields: dict[str, list[str]] = {}
    for item in rejected:
        fields.update(item["fields"] or {f"batch[{item['index']}]": [item["message"]]})
    return error_response(400, "invalid", "No event in the batch is valid.", fields)

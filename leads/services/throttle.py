"""Counters in the cache (Redis in production, the process's memory in the
embedded mode): failed sign-ins that lock an account or an address for a while,
and the per-key request budget of ingestion and API writes.

Every check or count is one cache round trip, so a limit costs ingestion next to
nothing. The counters live only in the cache: a Redis restart forgets them, which
lets a locked-out attacker start over, never locks anyone out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

from leads.outages import BROKER_ERRORS

PREFIX = "throttle"
logger = logging.getLogger(__name__)


def client_address(request: HttpRequest | None) -> str:
    """The address a request came from. Behind ``TRUSTED_PROXY_COUNT`` proxies it is
    the entry that many places from the right of X-Forwarded-For (what the first
    trusted proxy saw); entries to the left of it are whatever the client wrote."""
    if request is None:
        return ""
    proxies: int = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded: list[str] = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return str(request.META.get("REMOTE_ADDR", ""))


def counter_hit(key: str, *, ttl: int) -> int:
    """Add one to the counter ``key`` (created to expire ``ttl`` seconds after its
    first hit) and return the new count, atomically across processes.

    With the cache out of reach the count is 0: a Redis outage must neither turn
    stored events into errors nor lock everyone out of signing in."""
    try:
        return _counter_hit(key, ttl=ttl)
    except BROKER_ERRORS:
        logger.warning("throttle counter %s not counted: the cache is out of reach", key)
        return 0


def _counter_hit(key: str, *, ttl: int) -> int:
    full_key = f"{PREFIX}:{key}"
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # SET NX + INCR in one pipeline: one round trip, and the expiry is set only
        # by the first hit. Django's cache API would take two or three.
        name = backend.make_and_validate_key(full_key)
        client = backend._cache.get_client(name, write=True)  # type: ignore[attr-defined]
        pipe = client.pipeline(transaction=False)
        pipe.set(name, 0, ex=ttl, nx=True)
        pipe.incr(name)
        return int(pipe.execute()[1])
    cache.add(full_key, 0, ttl)
    try:
        return cache.incr(full_key)
    except ValueError:  # expired between add and incr
        cache.set(full_key, 1, ttl)
        return 1


def rate_hit(key: str, *, limit: int, window: int) -> int:
    """Count a request against ``limit`` per ``window`` seconds (fixed windows);
    0 while within the limit, else the seconds until the next window."""
    now = time.time()
    slot = int(now // window)
    count = counter_hit(f"rate:{key}:{slot}", ttl=window + 1)
    if count <= limit:
        return 0
    return max(1, math.ceil((slot + 1) * window - now))


# --- sign-in ----------------------------------------------------------------------


def _user_key(username: str) -> str:
    # Any string can be typed as a user name; the hash makes it a safe cache key.
    return "user:" + hashlib.sha256(username.encode()).hexdigest()[:32]


def _lock_keys(username: str, address: str) -> list[str]:
    keys = [f"{PREFIX}:lock:{_user_key(username)}"]
    if address:
        keys.append(f"{PREFIX}:lock:address:{address}")
    return keys


def login_lockout_seconds(*, username: str, address: str) -> int:
    """Seconds until ``username`` may sign in from ``address`` again; 0 when they
    may now (also while the cache is out of reach: nothing can be locked then)."""
    try:
        unlock_at = cache.get_many(_lock_keys(username, address)).values()
    except BROKER_ERRORS:
        logger.warning("sign-in lock of %r not checked: the cache is out of reach", username)
        return 0
    if not unlock_at:
        return 0
    return max(0, math.ceil(max(float(value) for value in unlock_at) - time.time()))


def login_failure_record(*, username: str, address: str) -> None:
    """Count a failed sign-in; the account or the address whose count reaches its
    limit within the lockout time is locked for the lockout time."""
    seconds = settings.LOGIN_LOCKOUT_SECONDS
    counted = [(_user_key(username), settings.LOGIN_FAILURE_LIMIT)]
    if address:
        counted.append((f"address:{address}", settings.LOGIN_ADDRESS_FAILURE_LIMIT))
    reached = [who for who, limit in counted if counter_hit(f"fail:{who}", ttl=seconds) >= limit]
    if reached:
        locked = [
            f"address {address}" if who.startswith("address:") else f"user name {username!r}"
            for who in reached
        ]
        logger.warning("Too many failed sign-ins, locked for %s s: %s", seconds, ", ".join(locked))
        unlock_at = time.time() + seconds
        try:
            cache.set_many({f"{PREFIX}:lock:{who}": unlock_at for who in reached}, seconds)
            # Counted afresh once the lockout is over.
            cache.delete_many([f"{PREFIX}:fail:{who}" for who in reached])
        except BROKER_ERRORS:
            logger.warning("sign-in lock not stored: the cache is out of reach")


def login_success_record(*, username: str) -> None:
    """A correct password forgets the account's earlier failures."""
    try:
        cache.delete(f"{PREFIX}:fail:{_user_key(username)}")
    except BROKER_ERRORS:
        logger.warning("sign-in failures of %r not reset: the cache is out of reach", username)


# --- API keys ---------------------------------------------------------------------


def api_key_rate_wait(*, key_id: int) -> int:
    """Count a request made with key ``key_id``: 0 while within its budget, else the
    seconds until it may send again. Ingestion and API writes share the budget."""
    return rate_hit(
        f"key:{key_id}", limit=settings.INGEST_RATE_LIMIT, window=settings.INGEST_RATE_WINDOW
    )

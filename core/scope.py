"""Reads remembered for a worker's batch, or for one event's transaction.

A worker processes a batch in seconds: reads that every event of it repeats
(the active trigger subscriptions, which keys dynamic segments depend on, score
categories, scoring settings) are made once per batch, and a flow published or
a segment saved meanwhile applies from the next batch. Within one transaction of
events (an event, or a group of events of known leads), reads that the events
and the events they derive share (a lead's waiting listeners, the derived
events themselves) are made once. Outside a
batch or an event, every read is made every time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

T = TypeVar("T")

_batch_cache: ContextVar[dict[str, Any] | None] = ContextVar("batch_cache", default=None)
_event_scope: ContextVar[dict[str, Any] | None] = ContextVar("event_scope", default=None)


@contextmanager
def processing_batch() -> Iterator[None]:
    """Within the block, ``batch_cached`` reads are made once."""
    token = _batch_cache.set({})
    try:
        yield
    finally:
        _batch_cache.reset(token)


def batch_current() -> bool:
    """Whether a batch is being processed (``batch_cached`` reads are kept)."""
    return _batch_cache.get() is not None


def batch_cached(key: str, load: Callable[[], T]) -> T:
    """``load()``, remembered for the rest of the batch being processed (outside
    a batch, loaded every time)."""
    cache = _batch_cache.get()
    if cache is None:
        return load()
    if key not in cache:
        cache[key] = load()
    return cast(T, cache[key])


# What ``kept_while_same`` keeps: by key, the signature it was built from and
# the value.
_kept: dict[str, tuple[Hashable, Any]] = {}


def kept_while_same(key: str, signature: Callable[[], Hashable], load: Callable[[], T]) -> T:
    """``load()``, kept by the process from one batch to the next while
    ``signature()`` stays the same: for what takes longer to build than a short
    read of what it is built from (hundreds of segments' conditions, dozens of
    flows' graphs). Call it from a ``batch_cached`` load, so that the signature
    is read once per batch."""
    seen = signature()
    kept = _kept.get(key)
    if kept is not None and kept[0] == seen:
        return cast(T, kept[1])
    value = load()
    _kept[key] = (seen, value)
    return value


def kept_forget() -> None:
    """Forget what ``kept_while_same`` keeps (tests)."""
    _kept.clear()


@contextmanager
def event_scope() -> Iterator[dict[str, Any]]:
    """Within the block (one event's transaction), ``event_scoped`` reads are
    made once; yields the scope itself."""
    scope: dict[str, Any] = {}
    token = _event_scope.set(scope)
    try:
        yield scope
    finally:
        _event_scope.reset(token)


def event_scope_current() -> dict[str, Any] | None:
    """The scope of the event being processed, None outside event processing."""
    return _event_scope.get()


def event_scoped(key: str, load: Callable[[], T]) -> T:
    """``load()``, remembered until the event being processed commits (outside
    event processing, loaded every time). Call ``event_scope_forget`` when this
    transaction changes what was loaded."""
    scope = _event_scope.get()
    if scope is None:
        return load()
    if key not in scope:
        scope[key] = load()
    return cast(T, scope[key])


def event_scope_put(key: str, value: Any) -> None:
    """Remember ``value`` as ``event_scoped(key, …)`` would (outside event
    processing, nothing is remembered)."""
    scope = _event_scope.get()
    if scope is not None:
        scope[key] = value


def event_scope_forget(key: str) -> None:
    scope = _event_scope.get()
    if scope is not None:
        scope.pop(key, None)

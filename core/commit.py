"""How durable the commit of an event's transaction has to be.

The events table is the outbox: an event's effects and its ``processed_at``
commit together, so a transaction that a PostgreSQL crash loses is lost whole,
and its event is simply processed again. Such a transaction may commit without
waiting for its WAL to reach the disk (``synchronous_commit = off``, flushed by
the WAL writer within a fraction of a second): nobody outside the database has
seen its commit. That wait was a quarter of a worker's time on a busy machine.

A transaction that queues something leaving the system (an email, a webhook
delivery, a message to Slack) is different: after its commit a task sends it
out, and a crash that then lost the commit would have the event processed and
the message sent a second time. Its commit keeps the server's setting. After
commit that work is always started by an ``on_commit`` callback, so the rule is
read off the callbacks: a transaction whose callbacks are all marked internal
(``on_commit_internal``: the doorbell of derived events, the segments' member
counts) may commit asynchronously; any other callback makes it durable. A new
effect is durable unless someone says it is internal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection, transaction


class _Internal:
    """An ``on_commit`` callback whose effect stays inside the system."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[], Any]):
        self.func = func

    def __call__(self) -> None:
        self.func()


def on_commit_internal(func: Callable[[], Any], *, robust: bool = False) -> None:
    """``transaction.on_commit(func)`` for work that stays inside the system (a
    message to our own workers, a counter in our own tables): redone if a crash
    loses the commit, so the commit need not wait for the disk."""
    transaction.on_commit(_Internal(func), robust=robust)


def callbacks_mark() -> int:
    """Where the callbacks of a transaction opened now will start."""
    return len(connection.run_on_commit)


def commit_leaves_system(*, since: int) -> bool:
    """Whether a callback registered after ``since`` (``callbacks_mark``) sends
    something out of the system once the transaction commits."""
    # Django keeps (savepoint ids, callback, robust) per callback.
    return any(not isinstance(entry[1], _Internal) for entry in connection.run_on_commit[since:])

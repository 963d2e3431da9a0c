"""What else an event does once the pipeline has applied it to its lead.

The pipeline (``leads.services.events``) does not know who listens: apps register
their reactions from their ``AppConfig.ready``, and every processed event runs
them under the lead's lock, in its transaction, in this order, whatever order
the apps were loaded in:

0. ``scoring`` (registered by ``scoring``): regrade a lead whose stage changed
   (a customer, a lost or a disqualified lead is never hot), emitting
   ``grade.changed``;
1. ``segments`` (registered by ``segments``): re-check the segments the event can
   change, emitting ``segment.entered`` / ``segment.left``;
2. ``emails`` (registered by ``emails``): a lead whose consent became pending
   gets its double opt-in email (a task sent after the commit); an ``email.*``
   event's first delivery, open, click, bounce or unsubscribe is kept on the
   send it is about;
3. ``flows`` (registered by ``flows``): resume the waits listening for the
   event, then enroll the lead in flows whose triggers match;
4. ``hooks`` (registered by ``flows``): deliver the event to the outbound
   webhook subscriptions of its hook event types.

Scoring goes first so that segments and flows see the grade the change left;
segments go before flows so that a flow's conditions see the memberships the event
changed; hooks go last so that they see the lead as the flows left it. A new
reaction gets a place in ``REACTION_ORDER``; registering a name that has none
is an error.

A reaction may also ask a question of the lead row while the pipeline locks it
(a *lock probe*: a SQL boolean over ``{lead}``, the lead's id), answered in the
same round trip as the lock: flows asks whether the lead has listening waits,
so most events need no read for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from leads.models import Event, Lead

REACTION_ORDER = ("scoring", "segments", "emails", "flows", "hooks")


class React(Protocol):
    def __call__(self, *, event: Event, lead: Lead) -> None: ...


@dataclass(frozen=True)
class Reaction:
    name: str
    react: React


@dataclass(frozen=True)
class LockProbe:
    name: str
    # A SQL boolean expression over ``{lead}``.
    sql: str
    # Called with the lead's id and the answer.
    answered: Callable[[int, bool], None]


_reactions: dict[str, Reaction] = {}
_probes: dict[str, LockProbe] = {}
# Read for every event: ordered once, again after a registration.
_ordered: tuple[tuple[Reaction, ...], tuple[LockProbe, ...]] | None = None


def _check(name: str, registered: dict[str, object]) -> None:
    if name not in REACTION_ORDER:
        raise ValueError(f"Reaction {name!r} has no place in REACTION_ORDER.")
    if name in registered:
        raise ValueError(f"Reaction {name!r} is registered already.")


def reaction_register(
    *,
    name: str,
    react: React,
    lock_probe: str = "",
    probe_answered: Callable[[int, bool], None] | None = None,
) -> None:
    """Run ``react(event, lead)`` for every processed event, at ``name``'s place
    in ``REACTION_ORDER``; with ``lock_probe``, also have the pipeline ask it when
    it locks the lead and pass the answer to ``probe_answered``."""
    global _ordered
    _check(name, dict(_reactions))
    if lock_probe:
        if probe_answered is None:
            raise ValueError("A lock probe needs probe_answered.")
        _probes[name] = LockProbe(name=name, sql=lock_probe, answered=probe_answered)
    _reactions[name] = Reaction(name=name, react=react)
    _ordered = None


def _in_order() -> tuple[tuple[Reaction, ...], tuple[LockProbe, ...]]:
    global _ordered
    if _ordered is None:
        _ordered = (
            tuple(_reactions[name] for name in REACTION_ORDER if name in _reactions),
            tuple(_probes[name] for name in REACTION_ORDER if name in _probes),
        )
    return _ordered


def reactions() -> tuple[Reaction, ...]:
    """The registered reactions, in ``REACTION_ORDER``."""
    return _in_order()[0]


def lock_probes() -> tuple[LockProbe, ...]:
    """The registered lock probes, in ``REACTION_ORDER``."""
    return _in_order()[1]

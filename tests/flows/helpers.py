from __future__ import annotations

import itertools
from typing import Any

from django.test import TestCase

from flows.engine import wakeups_claim
from flows.lifecycle import flow_create, flow_publish
from flows.models import Flow
from leads.models import Event
from leads.services.events import events_process

Node = tuple[str, str, dict[str, Any]]


def graph(
    *chain: Node,
    extra: tuple[Node, ...] = (),
    branches: tuple[tuple[str, str, str], ...] = (),
) -> dict[str, Any]:
    """Nodes as (id, type, config): ``chain`` wired one to the next through
    "next", ``extra`` wired only by the (source, handle, target) ``branches``."""
    nodes = [
        {"id": i, "type": t, "config": c, "position": {"x": 0, "y": n * 100}}
        for n, (i, t, c) in enumerate((*chain, *extra))
    ]
    edges = [
        {"id": f"{a[0]}-{b[0]}", "source": a[0], "sourceHandle": "next", "target": b[0]}
        for a, b in itertools.pairwise(chain)
    ]
    edges += [
        {"id": f"{s}-{h}-{t}", "source": s, "sourceHandle": h, "target": t} for s, h, t in branches
    ]
    return {"nodes": nodes, "edges": edges}


def published(name: str, g: dict[str, Any], **kwargs: Any) -> Flow:
    flow = flow_create(name=name, graph=g, **kwargs)
    flow_publish(flow=flow)
    flow.refresh_from_db()
    return flow


def claim() -> list[int]:
    """What beat does: claim due wake-ups; the fired steps run (eagerly) on commit."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return wakeups_claim()


def drain():
    """Process everything pending, as the worker would, until nothing is left;
    what is sent after commit (deliveries) is sent too."""
    for _ in range(20):
        pending = list(Event.objects.filter(processed_at__isnull=True).values_list("id", flat=True))
        if not pending:
            return
        with TestCase.captureOnCommitCallbacks(execute=True):
            events_process(event_ids=pending)

"""The decisions the engine and the dry run share (flows.rules), and the registry's
insistence that every node type can be both run and simulated."""

import datetime as dt
from typing import Any

import pytest
from django.utils import translation

from flows.models import Reentry
from flows.nodes import REGISTRY, NodeType, StepResult
from flows.nodes.base import SimResult, register
from flows.rules import (
    BEHIND,
    DISQUALIFIED,
    TRIGGER_ONCE,
    Entry,
    GraphIndex,
    entry_decide,
    entry_reads,
    event_match_keys,
    graph_index,
    lead_name,
    stage_move_refusal,
    task_due,
    task_title,
)

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("current", "target", "forward_only", "refusal"),
    [
        ("lead", "mql", True, None),
        ("subscriber", "customer", True, None),
        ("mql", "lead", True, BEHIND),
        ("sql", "sql", True, BEHIND),
        ("mql", "lead", False, None),
        ("sql", "sql", False, None),
        ("disqualified", "lead", True, DISQUALIFIED),
        ("disqualified", "disqualified", True, DISQUALIFIED),
        ("disqualified", "lead", False, None),
        ("lead", "disqualified", True, None),
        ("customer", "disqualified", True, None),
    ],
)
def test_stage_move_refusal(current, target, forward_only, refusal):
    assert stage_move_refusal(current=current, target=target, forward_only=forward_only) == refusal


def test_task_due():
    assert task_due(due_in=None, now=NOW) is None
    assert task_due(due_in={}, now=NOW) is None
    assert task_due(due_in={"amount": 3, "unit": "hours"}, now=NOW) == dt.datetime(
        2026, 3, 2, 12, 0, tzinfo=dt.UTC
    )
    assert task_due(due_in={"amount": 2, "unit": "days"}, now=NOW) == dt.datetime(
        2026, 3, 4, 9, 0, tzinfo=dt.UTC
    )


def test_lead_name_falls_back_to_the_email_then_the_id_in_the_active_language():
    def name(first: str, last: str, email: str | None) -> str:
        return lead_name(first_name=first, last_name=last, email=email, lead_id=7)

    assert name("Kim", "Lee", "kim@example.com") == "Kim Lee"
    assert name("Kim", "", "kim@example.com") == "Kim"
    assert name("", "", "kim@example.com") == "kim@example.com"
    assert name("", "", None) == "lead #7"
    assert name("", "", "") == "lead #7"
    with translation.override("de"):
        assert name("", "", None) == "Lead #7"


def test_task_title():
    assert task_title(template="Call {lead}", name="Kim Lee") == "Call Kim Lee"
    assert task_title(template="{lead}: {lead}", name="Kim") == "Kim: Kim"
    assert task_title(template="Follow up", name="Kim") == "Follow up"


def test_entry_reads_only_what_the_rule_needs():
    assert entry_reads(reentry=Reentry.ALWAYS, once_per_lead=False) == (False, False)
    assert entry_reads(reentry=Reentry.ALWAYS, once_per_lead=True) == (True, False)
    assert entry_reads(reentry=Reentry.ONCE, once_per_lead=False) == (False, True)
    assert entry_reads(reentry=Reentry.DAYS, once_per_lead=True) == (True, True)


def test_entry_decide():
    def decide(reentry, **kwargs):
        kwargs.setdefault("once_per_lead", False)
        days = kwargs.pop("days", None)
        return entry_decide(reentry=reentry, reentry_days=days, now=NOW, **kwargs)

    earlier = NOW - dt.timedelta(days=3)
    assert decide(Reentry.ONCE) == Entry(True, Reentry.ONCE)
    assert decide(Reentry.ONCE, last_at=earlier) == Entry(False, Reentry.ONCE, earlier)
    assert decide(Reentry.ALWAYS, last_at=earlier) == Entry(True, Reentry.ALWAYS, earlier)
    assert decide(Reentry.DAYS, days=7) == Entry(True, Reentry.DAYS)
    assert decide(Reentry.DAYS, days=7, last_at=earlier) == Entry(
        False, Reentry.DAYS, earlier, dt.datetime(2026, 3, 6, 9, 0, tzinfo=dt.UTC)
    )
    assert decide(Reentry.DAYS, days=2, last_at=earlier) == Entry(True, Reentry.DAYS, earlier)
    # Exactly N days ago is still inside the window.
    two_days = NOW - dt.timedelta(days=2)
    assert decide(Reentry.DAYS, days=2, last_at=two_days) == Entry(
        False, Reentry.DAYS, two_days, NOW
    )
    # Without a number of days, one day.
    assert decide(Reentry.DAYS, last_at=NOW - dt.timedelta(hours=23)).allowed is False
    assert decide(Reentry.DAYS, last_at=NOW - dt.timedelta(hours=25)).allowed is True
    # A once-per-lead trigger keeps out whoever came through it, whatever the flow's rule.
    for reentry in (Reentry.ALWAYS, Reentry.ONCE, Reentry.DAYS):
        assert decide(reentry, once_per_lead=True, through_trigger=True) == Entry(
            False, TRIGGER_ONCE
        )
    assert decide(Reentry.ALWAYS, once_per_lead=True) == Entry(True, Reentry.ALWAYS)
    # Through the trigger only counts for a once-per-lead trigger.
    assert decide(Reentry.ALWAYS, through_trigger=True) == Entry(True, Reentry.ALWAYS)


def test_event_match_keys():
    assert event_match_keys(name="", properties={}) == {""}
    assert event_match_keys(name="Requested demo", properties={"plan": "pro"}) == {
        "",
        "Requested demo",
    }
    assert event_match_keys(name="", properties={"segment_id": 12}) == {"", "12"}


def test_graph_index():
    graph: dict[str, Any] = {
        "nodes": [
            {"id": "t", "type": "app.event", "config": {}},
            {"id": "c", "type": "condition", "config": {}},
            {"id": "a", "type": "tag.add", "config": {}},
            {"id": "b", "type": "tag.add", "config": {}},
        ],
        "edges": [
            {"id": "e1", "source": "t", "target": "c"},
            {"id": "e2", "source": "c", "sourceHandle": "yes", "target": "a"},
            {"id": "e3", "source": "c", "sourceHandle": "no", "target": "b"},
            {"id": "e4", "source": "c", "sourceHandle": "yes", "target": "b"},
            {"source": "a", "sourceHandle": None, "target": "b"},
        ],
    }

    index = graph_index(graph)

    assert index == GraphIndex(
        nodes={node["id"]: node for node in graph["nodes"]},
        edges={
            ("t", "next"): [("e1", "c")],
            ("c", "yes"): [("e2", "a"), ("e4", "b")],
            ("c", "no"): [("e3", "b")],
            ("a", "next"): [("", "b")],
        },
    )
    assert index.targets("c", "yes") == ["a", "b"]
    assert index.targets("b", "next") == []
    assert graph_index({"nodes": []}) == GraphIndex(nodes={}, edges={})


def test_every_node_type_that_runs_can_be_simulated():
    assert {key for key, node in REGISTRY.items() if node.kind != "trigger"} == {
        key for key, node in REGISTRY.items() if node.simulate is not None
    }


def test_a_node_type_without_simulate_cannot_be_registered():
    node = NodeType(
        key="test.nosim",
        kind="action",
        label="No simulation",
        description="",
        icon="x",
        schema={},
        execute=lambda ctx: StepResult(),
    )

    with pytest.raises(ValueError, match=r"'test\.nosim' needs execute and simulate"):
        register(node)

    assert "test.nosim" not in REGISTRY
    simulated = NodeType(**{**node.__dict__, "simulate": lambda sim, n: SimResult("x", "y")})
    try:
        assert register(simulated) is simulated
    finally:
        REGISTRY.pop("test.nosim", None)

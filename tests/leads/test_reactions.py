"""The pipeline's reactions: registered by the apps at ready time, run in the
documented order whatever order the apps load in."""

import pytest

from emails.reactions import emails_on_event
from flows.engine import LISTENING, flows_on_event
from flows.hooks import hooks_on_event
from leads.services import reactions as registry
from scoring.services import scoring_on_event
from segments.services import segments_on_event


def test_apps_registered_scoring_then_segments_then_emails_then_flows():
    assert [(r.name, r.react) for r in registry.reactions()] == [
        ("scoring", scoring_on_event),
        ("segments", segments_on_event),
        ("emails", emails_on_event),
        ("flows", flows_on_event),
        ("hooks", hooks_on_event),
    ]
    assert [(p.name, p.sql) for p in registry.lock_probes()] == [("flows", LISTENING)]


def test_order_is_the_documented_one_not_the_registration_order(monkeypatch):
    monkeypatch.setattr(registry, "_reactions", {})
    monkeypatch.setattr(registry, "_probes", {})
    monkeypatch.setattr(registry, "_ordered", None)

    def flows(*, event, lead):
        return None

    def segments(*, event, lead):
        return None

    registry.reaction_register(name="flows", react=flows)
    registry.reaction_register(name="segments", react=segments)

    assert [r.name for r in registry.reactions()] == ["segments", "flows"]


def test_a_reaction_without_a_place_or_twice_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "_reactions", dict(registry._reactions))
    monkeypatch.setattr(registry, "_ordered", None)

    def react(*, event, lead):
        return None

    with pytest.raises(ValueError, match="'audit' has no place in REACTION_ORDER"):
        registry.reaction_register(name="audit", react=react)
    with pytest.raises(ValueError, match="'flows' is registered already"):
        registry.reaction_register(name="flows", react=react)

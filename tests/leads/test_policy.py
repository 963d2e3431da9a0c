"""The role policy as the pure function every page, bulk action and API call asks."""

import pytest

from leads.services.policy import (
    bulk_action_refusal,
    bulk_actions_allowed,
    lead_change_refusals,
    owner_refusal,
)

REP, COLLEAGUE = 7, 8
REP_ONLY = "Sales reps can only assign a lead to themselves or to no one."
IDENTITY = "Sales reps cannot change this field."


@pytest.mark.parametrize(
    ("role", "owner", "refused"),
    [
        ("admin", COLLEAGUE, False),
        ("marketer", COLLEAGUE, False),
        ("sales", COLLEAGUE, True),
        ("sales", REP, False),
        ("sales", None, False),
        (None, None, True),
    ],
)
def test_who_may_become_the_owner(role, owner, refused):
    assert (owner_refusal(role=role, user_id=REP, owner=owner) is not None) is refused


def test_a_rep_changes_no_identity_and_gives_no_lead_away():
    current = {"email": "a@x.example", "external_id": "u1", "unsubscribed": False, "owner": REP}

    refused = lead_change_refusals(
        role="sales",
        user_id=REP,
        current=current,
        changes={"email": "b@x.example", "unsubscribed": False, "owner": COLLEAGUE, "stage": "sql"},
    )

    # The same unsubscribed value is no change; the stage is theirs to change.
    assert refused == {"email": IDENTITY, "owner": REP_ONLY}
    assert lead_change_refusals(role="marketer", user_id=1, current=current, changes={}) == {}
    unchanged = {"owner": REP, "email": "a@x.example", "stage": "lead"}
    assert lead_change_refusals(role="sales", user_id=REP, current=current, changes=unchanged) == {}


def test_bulk_actions_by_role():
    assert sorted(bulk_actions_allowed("sales")) == ["owner", "stage", "tag_add", "tag_remove"]
    assert bulk_actions_allowed(None) == frozenset()
    assert bulk_action_refusal(
        role="sales", user_id=REP, action="segment", values={"segment": 1}
    ) == {"segment": "Only admins and marketers change segment membership."}
    assert bulk_action_refusal(
        role="sales", user_id=REP, action="owner", values={"owner": COLLEAGUE}
    ) == {"owner": REP_ONLY}
    assert (
        bulk_action_refusal(role="sales", user_id=REP, action="owner", values={"owner": REP}) == {}
    )
    assert bulk_action_refusal(role="marketer", user_id=1, action="segment", values={}) == {}
    assert bulk_action_refusal(role=None, user_id=None, action="stage", values={}) == {
        "action": "Your role does not allow this."
    }

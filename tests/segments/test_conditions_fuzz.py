"""Whatever condition tree a client sends to the segments API (preview, create,
and a flow's condition node), it is refused with a 400 naming the bad paths, or
accepted and counted, and never a 500. Trees mix rules built from the real fields,
operators and activity options with any JSON in any place."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.conditions import FIELD_TYPES, OPERATORS
from segments.conditions.schema import PROPERTY_OPERATORS
from segments.services import segment_create
from tests.factories import FieldDefinitionFactory, LeadFactory

pytestmark = pytest.mark.django_db

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["2026-01-01", "2026-13-45", "CEO", "hot", "customer", "-1", "1e400"])
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
ALL_OPERATORS = sorted({op for ops in OPERATORS.values() for op in ops})
FIELDS = [*FIELD_TYPES, "custom.plan", "custom.seats", "custom.nope", "score.engagement"]
VALUES = SCALARS | st.lists(SCALARS, max_size=3) | ANY_JSON


def _maybe(draw: st.DrawFn, key: str, strategy: st.SearchStrategy, out: dict) -> None:
    if draw(st.booleans()):
        out[key] = draw(strategy)


@st.composite
def field_rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "field": draw(st.sampled_from(FIELDS) | ANY_JSON),
        "op": draw(st.sampled_from(ALL_OPERATORS) | ANY_JSON),
    }
    _maybe(draw, "value", VALUES, rule)
    return rule


@st.composite
def activity_rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "activity": draw(st.sampled_from(["email.opened", "page", "track", "nope"]) | ANY_JSON)
    }
    _maybe(draw, "name", st.text(max_size=5) | ANY_JSON, rule)
    _maybe(draw, "within_days", st.integers(-5, 10**12) | ANY_JSON, rule)
    _maybe(
        draw,
        "count",
        st.fixed_dictionaries({"op": st.sampled_from(["eq", "gte", "lt", "x"]), "value": VALUES})
        | ANY_JSON,
        rule,
    )
    _maybe(
        draw,
        "where",
        st.dictionaries(
            st.sampled_from(["url", "plan", ""]) | st.text(max_size=4),
            st.fixed_dictionaries(
                {"op": st.sampled_from(PROPERTY_OPERATORS) | ANY_JSON, "value": VALUES}
            )
            | ANY_JSON,
            max_size=2,
        )
        | ANY_JSON,
        rule,
    )
    _maybe(draw, "between", st.lists(VALUES, max_size=3) | ANY_JSON, rule)
    return rule


def segment_rules(segment_id: int) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "segment": st.sampled_from([segment_id, 0, -1, 2**70]) | ANY_JSON,
            "op": st.sampled_from(["in", "not_in", "x"]) | ANY_JSON,
        }
    )


def trees(segment_id: int) -> st.SearchStrategy:
    rules = field_rules() | activity_rules() | segment_rules(segment_id) | ANY_JSON
    return st.recursive(
        rules,
        lambda children: st.dictionaries(
            st.sampled_from(["all", "any"]), st.lists(children, max_size=3), min_size=1
        ),
        max_leaves=6,
    )


def _bad_paths(response) -> set[str]:
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] in ("invalid", "parse_error")
    assert isinstance(body["error"]["message"], str)
    fields = body["error"]["fields"]
    assert all(isinstance(m, list) and all(isinstance(x, str) for x in m) for m in fields.values())
    return set(fields)


@pytest.fixture
def account(db):
    FieldDefinitionFactory.create(key="plan", type="choice", options=["free", "pro"])
    FieldDefinitionFactory.create(key="seats", type="number")
    LeadFactory.create(job_title="CEO", company_size=30)
    LeadFactory.create(job_title="Intern", company_size=None)
    ceos = segment_create(
        name="CEOs", conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}
    )
    return ceos.pk


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_tree_is_refused_with_paths_or_counted(marketer_api, account, data):
    tree = data.draw(trees(account) | ANY_JSON, label="conditions")

    preview = marketer_api.post("/api/v1/segments/preview/", {"conditions": tree}, format="json")
    created = marketer_api.post(
        "/api/v1/segments/",
        {"name": f"Fuzzed {uuid.uuid4().hex}", "conditions": tree},
        format="json",
    )

    assert preview.status_code in (200, 400), preview.content
    assert created.status_code == (201 if preview.status_code == 200 else 400), created.content
    if preview.status_code == 400:
        paths = _bad_paths(preview)
        assert paths, preview.content
        # (The body's parser names a NUL character's place as ``conditions[0]``.)
        assert all(
            p == "conditions" or p.startswith(("conditions.", "conditions[")) for p in paths
        ) or (preview.json()["error"]["code"] == "parse_error")
        return
    assert 0 <= preview.json()["count"] <= 2
    flow = marketer_api.post(
        "/api/v1/flows/", {"name": f"Branch {uuid.uuid4().hex[:8]}"}, format="json"
    ).json()
    graph = {
        "nodes": [
            {"id": "t", "type": "lead.created", "config": {}},
            {"id": "c", "type": "condition", "config": {"conditions": tree}},
        ],
        "edges": [{"id": "e", "source": "t", "sourceHandle": "next", "target": "c"}],
    }
    marketer_api.put(
        f"/api/v1/flows/{flow['id']}/draft/", {"graph": graph, "revision": 0}, format="json"
    )
    published = marketer_api.post(f"/api/v1/flows/{flow['id']}/publish/")
    assert published.status_code == 201, published.content


def test_a_nul_character_in_a_tree_is_refused_at_its_place(marketer_api, account):
    preview = marketer_api.post(
        "/api/v1/segments/preview/", {"conditions": ["\x00"]}, format="json"
    )

    assert preview.status_code == 400
    assert preview.json()["error"]["fields"] == {
        "conditions[0]": ["Text may not contain NUL characters."]
    }

"""Whatever graph a client sends to the draft / validate / publish API, it is
refused with problems in the error shape or accepted, published and runnable (a
dry run takes it), and never a 500. Graphs mix well-formed nodes of the registry's
types with any JSON in any place."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.lifecycle import flow_create, flow_name_free
from flows.nodes import REGISTRY
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
IDS = ["t", "a", "b", "c"]
NODE_ID = st.sampled_from(IDS) | ANY_JSON
CONFIGS: dict[str, list[dict[str, Any]]] = {
    "app.event": [{}, {"event": "Signed up"}, {"event": "x", "where": {"plan": {"op": "is"}}}],
    "lead.created": [{}],
    "score.adjust": [{"points": 5, "category": "engagement", "reason": "Trial"}],
    "tag.add": [{"tag": "vip"}],
    "condition": [
        {"conditions": {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}},
        {"conditions": {"any": [{"field": "score", "op": "gte", "value": "x"}]}},
    ],
    "wait": [{"amount": 1, "unit": "days"}, {"amount": 0, "unit": "years"}],
    "exit": [{}],
}
KNOWN_TYPE = st.sampled_from(sorted(CONFIGS))


@st.composite
def nodes(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY_JSON)
    node_type = draw(KNOWN_TYPE | st.sampled_from(sorted(REGISTRY)) | ANY_JSON)
    known = CONFIGS.get(node_type) if isinstance(node_type, str) else None
    config = draw(st.sampled_from(known) | ANY_JSON) if known else draw(ANY_JSON)
    return {
        "id": draw(NODE_ID),
        "type": node_type,
        "config": config,
        "position": {"x": draw(st.integers(0, 500)), "y": 0},
    }


@st.composite
def edges(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY_JSON)
    return {
        "id": draw(st.text(max_size=4) | ANY_JSON),
        "source": draw(NODE_ID),
        "sourceHandle": draw(
            st.sampled_from(["next", "yes", "no", "met", "timeout", None]) | ANY_JSON
        ),
        "target": draw(NODE_ID),
    }


@st.composite
def chains(draw: st.DrawFn) -> dict[str, Any]:
    """A trigger and a line of well-configured steps: always publishable."""
    trigger = draw(st.sampled_from([("app.event", {"event": "Signed up"}), ("lead.created", {})]))
    steps = draw(
        st.lists(
            st.sampled_from(
                [
                    ("score.adjust", CONFIGS["score.adjust"][0]),
                    ("tag.add", CONFIGS["tag.add"][0]),
                    ("wait", CONFIGS["wait"][0]),
                    ("condition", CONFIGS["condition"][0]),
                ]
            ),
            max_size=4,
        )
    )
    chain = [trigger, *steps]
    graph_nodes = [
        {"id": f"n{i}", "type": t, "config": c, "position": {"x": 0, "y": 100 * i}}
        for i, (t, c) in enumerate(chain)
    ]
    graph_edges = [
        {
            "id": f"e{i}",
            "source": f"n{i}",
            "sourceHandle": "yes" if chain[i][0] == "condition" else "next",
            "target": f"n{i + 1}",
        }
        for i in range(len(chain) - 1)
    ]
    return {"nodes": graph_nodes, "edges": graph_edges}


FUZZED = st.fixed_dictionaries(
    {"nodes": st.lists(nodes(), max_size=6), "edges": st.lists(edges(), max_size=6)}
) | st.fixed_dictionaries({"nodes": ANY_JSON, "edges": ANY_JSON})


GRAPHS = st.tuples(st.just(True), chains()) | st.tuples(st.just(False), FUZZED)


def _assert_error_shape(body: dict[str, Any]) -> None:
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["fields"], dict)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=GRAPHS)
def test_any_graph_is_refused_clearly_or_published_and_runnable(marketer_api, case):
    well_formed, graph = case
    flow = flow_create(name=flow_name_free(base="Fuzzed"))
    lead = LeadFactory.create()
    url = f"/api/v1/flows/{flow.pk}"

    tried = marketer_api.post(f"{url}/dry-run/", {"lead": lead.pk, "graph": graph}, format="json")
    assert tried.status_code in (200, 400), tried.content
    if tried.status_code == 400:
        _assert_error_shape(tried.json())
    saved = marketer_api.put(f"{url}/draft/", {"graph": graph, "revision": 0}, format="json")
    assert saved.status_code in (200, 400), saved.content
    if saved.status_code == 400:
        error = saved.json()["error"]
        _assert_error_shape(saved.json())
        # Not a graph at all, or a NUL in some text (no database column holds one).
        assert error["code"] == "invalid"
        assert all(p == "graph" or p.startswith("graph.") for p in error["fields"]), error
        return
    checked = marketer_api.post(f"{url}/validate/")
    published = marketer_api.post(f"{url}/publish/")

    assert checked.status_code in (200, 400), checked.content
    if well_formed:
        assert checked.status_code == 200, checked.content
    if checked.status_code == 400:
        body = checked.json()
        _assert_error_shape(body)
        assert body["error"]["code"] == "invalid_graph"
        assert body["error"]["nodes"] or body["error"]["graph"]
        assert published.status_code == 400
        assert published.json()["error"] == body["error"]
        return
    assert checked.json() == {"valid": True}
    assert published.status_code == 201, published.content
    assert published.json()["number"] == 1
    ran = marketer_api.post(
        f"{url}/dry-run/",
        {"lead": lead.pk, "event": {"type": "track", "name": "Signed up"}},
        format="json",
    )
    assert ran.status_code == 200, ran.content
    assert ran.json()["path"][:1] in ([], *([n["id"]] for n in graph["nodes"]))


def test_a_graph_over_the_node_limit_is_refused_without_walking_it(marketer_api):
    flow = flow_create(name="Long")
    chain = [{"id": "t", "type": "lead.created", "config": {}}] + [
        {"id": f"n{i}", "type": "tag.add", "config": {"tag": "x"}} for i in range(3000)
    ]
    links = [
        {"id": f"e{i}", "source": a["id"], "sourceHandle": "next", "target": b["id"]}
        for i, (a, b) in enumerate(itertools.pairwise(chain))
    ]
    marketer_api.put(
        f"/api/v1/flows/{flow.pk}/draft/",
        {"graph": {"nodes": chain, "edges": links}, "revision": 0},
        format="json",
    )

    response = marketer_api.post(f"/api/v1/flows/{flow.pk}/validate/")

    assert response.status_code == 400
    assert response.json()["error"]["graph"] == ["A flow has at most 500 steps."]

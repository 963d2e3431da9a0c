"""The leads behind a node's counts on the canvas: a flow's enrollments filtered by
the state of their step at a node, as the stats count them."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from flows.engine import wakeup_fire, wakeups_claim
from flows.models import Flow, StepRun, Wakeup
from flows.nodes import REGISTRY
from leads.models import Lead
from tests.factories import EventFactory, LeadFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow() -> Flow:
    """Go → CEO? yes: wait 2 days → end; no: tag (an action that always raises) → end."""
    return published(
        "Go",
        graph(
            ("t", "app.event", {"event": "Go"}),
            (
                "ceo",
                "condition",
                {"conditions": {"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]}},
            ),
            extra=(
                ("wait", "wait", {"amount": 2, "unit": "days"}),
                ("tag", "tag.add", {"tag": "x"}),
                ("end", "exit", {}),
            ),
            branches=(
                ("ceo", "yes", "wait"),
                ("wait", "next", "end"),
                ("ceo", "no", "tag"),
                ("tag", "next", "end"),
            ),
        ),
    )


@pytest.fixture
def broken_tag() -> Iterator[None]:
    node = REGISTRY["tag.add"]
    original = node.execute

    def explode(ctx: Any) -> None:
        raise RuntimeError("tag service down")

    object.__setattr__(node, "execute", explode)
    try:
        yield
    finally:
        object.__setattr__(node, "execute", original)


def go(lead: Lead) -> None:
    EventFactory.create(lead=lead, type="track", name="Go", properties={})
    drain()


@pytest.fixture
def leads(flow: Flow, broken_tag: None) -> dict[str, Lead]:
    """A CEO waiting at "wait"; at "tag", one lead whose step failed after its
    retries and one whose step is still being retried."""
    failed = LeadFactory.create(job_title="Intern")
    go(failed)
    step = StepRun.objects.get(enrollment__lead=failed, node_id="tag")
    while step.status != "failed":
        Wakeup.objects.update(due_at=timezone.now() - dt.timedelta(seconds=1))
        for wakeup_id in wakeups_claim():
            wakeup_fire(wakeup_id=wakeup_id)
        step.refresh_from_db()
    retrying = LeadFactory.create(job_title="Analyst")
    go(retrying)
    ceo = LeadFactory.create(job_title="CEO")
    go(ceo)
    return {"failed": failed, "retrying": retrying, "ceo": ceo}


def listed(api: Any, flow: Flow, query: str) -> list[int]:
    response = api.get(f"/api/v1/flows/{flow.pk}/enrollments/?{query}")
    assert response.status_code == 200, response.content
    return [e["lead"] for e in response.json()["results"]]


def test_the_counts_of_a_node_list_their_leads(marketer_api, flow, leads):
    ceo, retrying, failed = leads["ceo"].pk, leads["retrying"].pk, leads["failed"].pk
    stats = marketer_api.get(f"/api/v1/flows/{flow.pk}/stats/").json()["nodes"]
    assert (stats["wait"], stats["tag"]) == (
        {"entered": 1, "completed": 0, "waiting": 1, "failed": 0},
        {"entered": 2, "completed": 0, "waiting": 1, "failed": 1},
    )

    assert listed(marketer_api, flow, "node=wait&status=entered") == [ceo]
    assert listed(marketer_api, flow, "node=wait&status=waiting") == [ceo]
    assert listed(marketer_api, flow, "node=wait&status=failed") == []
    assert listed(marketer_api, flow, "node=tag&status=entered") == [retrying, failed]
    # Being retried counts as waiting, as in the stats.
    assert listed(marketer_api, flow, "node=tag&status=waiting") == [retrying]
    assert listed(marketer_api, flow, "node=tag&status=failed") == [failed]
    # Completed steps at the trigger: none of these leads is waiting there.
    assert listed(marketer_api, flow, "node=t&status=waiting") == []
    assert listed(marketer_api, flow, "node=t&status=completed") == [ceo, retrying, failed]
    assert listed(marketer_api, flow, "node=wait&status=completed") == []
    assert listed(marketer_api, flow, "node=t") == [ceo, retrying, failed]
    # Without a node, a step in that state anywhere.
    assert listed(marketer_api, flow, "status=failed") == [failed]
    assert listed(marketer_api, flow, "status=waiting") == [ceo, retrying]


def test_an_unknown_status_is_refused(marketer_api, flow):
    response = marketer_api.get(f"/api/v1/flows/{flow.pk}/enrollments/?node=t&status=done")

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid",
            "message": "The request has invalid fields.",
            "fields": {"status": ["Expected one of: entered, completed, waiting, failed."]},
        }
    }


def test_listing_a_node_takes_a_fixed_number_of_queries(
    marketer_api, flow, leads, django_assert_max_num_queries
):
    for _ in range(5):
        go(LeadFactory.create(job_title="CEO"))

    with django_assert_max_num_queries(4):
        assert len(listed(marketer_api, flow, "node=wait&status=waiting")) == 6

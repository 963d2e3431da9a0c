import json

import pytest

from flows.models import Flow
from segments.services import segment_create
from tests.flows.helpers import graph, published

pytestmark = pytest.mark.django_db


def builder_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="builder-data" type="application/json">') + len(
        '<script id="builder-data" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_flow_list_creates_and_lists(client, marketer, django_assert_max_num_queries):
    client.force_login(marketer)
    assert client.post("/flows/", {"name": "  "}).status_code == 200
    assert b"Give the flow a name." in client.post("/flows/", {"name": "  "}).content
    assert b"at most 200" in client.post("/flows/", {"name": "x" * 201}).content
    response = client.post("/flows/", {"name": "Welcome <b>CEOs</b>"})
    flow = Flow.objects.get()
    assert response["Location"] == f"/flows/{flow.pk}/"
    assert (flow.name, flow.status, flow.draft) == (
        "Welcome <b>CEOs</b>",
        "draft",
        {"nodes": [], "edges": []},
    )
    for n in range(5):
        published(f"Flow {n}", graph(("t", "app.event", {"event": f"Event {n}"})))
    # Session, user, role, unread notifications, the flows with their versions.
    with django_assert_max_num_queries(5):
        page = client.get("/flows/")
    html = page.content.decode()
    assert "Welcome &lt;b&gt;CEOs&lt;/b&gt;" in html
    assert (
        html.count('<span class="badge lf-status lf-status-active">Active</span>\n        v1') == 5
    )


def test_builder_page_embeds_the_draft_types_and_summaries(client, marketer):
    segment = segment_create(
        name="Hot <leads>", conditions={"all": [{"field": "score", "op": "gte", "value": 50}]}
    )
    flow = published(
        "Hot",
        graph(
            ("t", "segment.entered", {"segment": segment.pk}),
            ("s", "score.adjust", {"points": 10, "category": "fit", "reason": "Hot"}),
        ),
    )
    client.force_login(marketer)
    response = client.get(f"/flows/{flow.pk}/")
    assert response.status_code == 200
    data = builder_data(response)
    assert data["flow"] == {"id": flow.pk, "name": "Hot", "status": "active", "version": 1}
    assert data["readOnly"] is False
    assert [n["id"] for n in data["graph"]["nodes"]] == ["t", "s"]
    assert data["summaries"] == {
        "t": "Entered segment: Hot <leads>",
        "s": "+10 Fit: Hot",
    }
    assert {t["key"] for t in data["nodeTypes"]} >= {"segment.entered", "score.adjust", "wait"}
    assert data["urls"]["draft"] == f"/api/v1/flows/{flow.pk}/draft/"
    assert data["urls"]["nodeForm"] == f"/flows/{flow.pk}/node-form/"
    # The JSON is escaped for the script element: no markup breaks out of it.
    assert "<leads>" not in response.content.decode().split('id="builder-data"')[1][:2000]


def test_a_published_version_opens_read_only(client, marketer):
    flow = published("V", graph(("t", "app.event", {"event": "First"})))
    flow.draft = graph(("t", "app.event", {"event": "Second"}))
    flow.save()
    client.force_login(marketer)
    data = builder_data(client.get(f"/flows/{flow.pk}/?version=1"))
    assert data["readOnly"] is True
    assert data["viewing"] == 1
    assert data["graph"]["nodes"][0]["config"] == {"event": "First"}
    assert client.get(f"/flows/{flow.pk}/?version=7").status_code == 404
    assert client.get(f"/flows/{flow.pk}/?version=x").status_code == 302


def test_sales_cannot_open_flows(client, sales):
    flow = published("V", graph(("t", "app.event", {"event": "First"})))
    client.force_login(sales)
    assert client.get("/flows/").status_code == 403
    assert client.get(f"/flows/{flow.pk}/").status_code == 403
    assert client.post("/flows/", {"name": "Mine"}).status_code == 403
    assert Flow.objects.count() == 1

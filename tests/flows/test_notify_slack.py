""" "Notify sales" posting to Slack: the node's own URL, or the team's from
Settings → Integrations when the node asks to post."""

import http.server
import json
import threading

import pytest

from flows.dryrun import flow_dry_run
from flows.lifecycle import flow_create
from flows.models import Delivery
from flows.nodes.actions import slack_target
from leads.models import IntegrationSettings
from leads.services.users import integration_settings_update
from tests.factories import EventFactory, LeadFactory, UserFactory
from tests.flows.helpers import drain, graph, published

pytestmark = pytest.mark.django_db


class _Slack(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        _Slack.received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def slack_server(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    _Slack.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slack)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _run(config):
    UserFactory.create(username="rep", role="sales")
    published(
        "Slack",
        graph(
            ("t", "app.event", {"event": "Asked for a demo"}),
            ("n", "sales.notify", {"title": "Call {lead}", "email": False, **config}),
        ),
    )
    lead = LeadFactory.create(email="ada@x.example", first_name="Ada", last_name="King")
    EventFactory.create(lead=lead, type="track", name="Asked for a demo")
    drain()


def test_post_to_slack_uses_the_team_url_from_settings(slack_server):
    # The settings form insists on https; the row is written directly for a local server.
    integration_settings_update(slack_webhook_url=f"{slack_server}/team")
    _run({"slack": True})
    assert [(path, json.loads(body)) for path, body in _Slack.received] == [
        ("/team", {"text": "Call Ada King (Ada King)"})
    ]
    delivery = Delivery.objects.get()
    assert (delivery.kind, delivery.target, delivery.status) == (
        "slack",
        f"{slack_server}/team",
        "sent",
    )


def test_the_node_url_wins_over_the_team_url():
    # Node URLs must be https, so this one is checked where the target is chosen.
    integration_settings_update(slack_webhook_url="https://hooks.example/team")
    own = "https://hooks.example/own"
    assert slack_target({"slack": True, "slack_webhook": own}) == own
    assert slack_target({"slack_webhook": own}) == own
    assert slack_target({"slack": True}) == "https://hooks.example/team"
    assert slack_target({"slack": False}) == ""


def test_no_post_unless_the_node_asks(slack_server):
    integration_settings_update(slack_webhook_url=f"{slack_server}/team")
    _run({})
    assert _Slack.received == []
    assert Delivery.objects.count() == 0


def test_asking_without_a_team_url_posts_nothing():
    assert not IntegrationSettings.objects.exists()
    _run({"slack": True})
    assert Delivery.objects.count() == 0


@pytest.mark.parametrize(
    ("team_url", "expected"),
    [
        ("https://hooks.example/team", "; Slack message to hooks.example"),
        ("", "; no Slack message (no Slack URL in Settings → Integrations)"),
    ],
)
def test_dry_run_names_the_slack_message(team_url, expected):
    integration_settings_update(slack_webhook_url=team_url)
    flow = flow_create(
        name="Slack",
        graph=graph(
            ("t", "app.event", {"event": "Asked for a demo"}),
            ("n", "sales.notify", {"title": "Call {lead}", "email": False, "slack": True}),
        ),
    )
    rep = UserFactory.create(username="sam", first_name="Sam", last_name="Rep", role="sales")
    lead = LeadFactory.create(first_name="Kim", last_name="Lee", owner=rep)
    result = flow_dry_run(
        flow=flow,
        graph=flow.draft,
        lead=lead,
        event={"type": "track", "name": "Asked for a demo", "properties": {}},
    )
    assert result["steps"][1]["effect"] == (
        f"task 'Call Kim Lee' for Sam Rep (the owner); in-app notification{expected}"
    )

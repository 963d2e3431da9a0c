"""Outbound HTTP (flows/outbound.py) and the delivery's claim / send / record:
no request to local or private targets, none followed through a redirect, a
bounded answer, and no transaction open while a receiver takes its time."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import shutil
import ssl
import subprocess
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from flows.graph import config_problems
from flows.models import Delivery, Enrollment, StepRun
from flows.nodes import REGISTRY
from flows.outbound import (
    MAX_RESPONSE_BYTES,
    OutboundFailed,
    OutboundRefused,
    outbound_post,
    outbound_url_problem,
)
from flows.services import DELIVERY_CLAIM_SECONDS, deliveries_due, delivery_send
from leads.models import Lead
from tests.factories import DeliveryFactory, EventFactory, LeadFactory
from tests.flows.helpers import drain, graph, published

LOCAL_REFUSAL = (
    "%s is a local or private address (%s); Leadflow does not send there unless an "
    "administrator allows it in OUTBOUND_ALLOWED_HOSTS."
)


class _Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list = []
    status = 200
    headers_out: dict = {}
    answer = b""
    arrived = threading.Event()
    release = threading.Event()
    answered = threading.Event()
    hold = False

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((self.path, dict(self.headers), body))
        _Receiver.arrived.set()
        if _Receiver.hold:
            _Receiver.release.wait(10)
        self.send_response(_Receiver.status)
        for name, value in _Receiver.headers_out.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(_Receiver.answer)))
        self.end_headers()
        # The client may hang up once it read what it wanted.
        with contextlib.suppress(OSError):
            self.wfile.write(_Receiver.answer)
        _Receiver.answered.set()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    _Receiver.status = 200
    _Receiver.headers_out = {}
    _Receiver.answer = b""
    _Receiver.arrived = threading.Event()
    _Receiver.release = threading.Event()
    _Receiver.answered = threading.Event()
    _Receiver.hold = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    _Receiver.release.set()
    server.shutdown()
    server.server_close()


# --- which targets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "address"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254"),
        ("http://localhost:6379/", "localhost", "127.0.0.1"),
        ("http://[::1]:8000/x", "::1", "::1"),
        ("https://10.1.2.3/hook", "10.1.2.3", "10.1.2.3"),
        ("https://192.168.0.10/hook", "192.168.0.10", "192.168.0.10"),
        ("http://100.64.0.7/", "100.64.0.7", "100.64.0.7"),
        ("http://0.0.0.0:8000/", "0.0.0.0", "0.0.0.0"),  # noqa: S104 - the target refused
        ("http://224.0.0.251/", "224.0.0.251", "224.0.0.251"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("http://[fe80::1]/", "fe80::1", "fe80::1"),
        ("http://240.0.0.1/", "240.0.0.1", "240.0.0.1"),
    ],
)
def test_local_private_and_reserved_targets_are_refused(url, host, address):
    assert outbound_url_problem(url) == LOCAL_REFUSAL % (host, address)


def test_public_addresses_and_names_that_do_not_resolve_yet_pass_the_save_check():
    assert outbound_url_problem("https://93.184.216.34/hook") is None
    assert outbound_url_problem("https://[2606:4700::1111]/hook") is None
    # Checked again at every send; a DNS hiccup must not block saving.
    assert outbound_url_problem("https://hooks.example/in") is None


def test_urls_that_are_not_http_or_carry_credentials_are_refused():
    assert outbound_url_problem("ftp://93.184.216.34/x") == "Use an http:// or https:// URL."
    assert outbound_url_problem("https://user:pw@93.184.216.34/x") == (
        "Put no user name or password in the URL."
    )
    assert outbound_url_problem("https:///nohost") == "The URL has no host."


def test_an_administrator_allows_hosts_and_networks(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["localhost", "10.0.0.0/8", "[::1]"]
    assert outbound_url_problem("http://localhost:6379/") is None
    assert outbound_url_problem("http://10.200.1.1/hook") is None
    assert outbound_url_problem("http://[::1]:8000/") is None
    assert outbound_url_problem("http://192.168.1.1/") == LOCAL_REFUSAL % (
        "192.168.1.1",
        "192.168.1.1",
    )


def test_node_configs_with_a_local_url_do_not_validate():
    assert config_problems(
        REGISTRY["webhook.send"], {"url": "http://169.254.169.254/latest/meta-data/"}
    ) == {"url": [LOCAL_REFUSAL % ("169.254.169.254", "169.254.169.254")]}
    assert config_problems(
        REGISTRY["sales.notify"], {"title": "Call", "slack_webhook": "https://127.0.0.1/x"}
    ) == {"slack_webhook": [LOCAL_REFUSAL % ("127.0.0.1", "127.0.0.1")]}
    assert config_problems(REGISTRY["webhook.send"], {"url": "https://93.184.216.34/h"}) == {}


# --- at send time -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_published_webhook_to_loopback_is_refused_once_and_fails_its_step(settings, receiver):
    url = f"http://127.0.0.1:{receiver}/hook"
    # Published while an administrator allowed the host, sent after they stopped.
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    published(
        "Hook", graph(("t", "app.event", {"event": "Paid"}), ("h", "webhook.send", {"url": url}))
    )
    settings.OUTBOUND_ALLOWED_HOSTS = []
    lead = LeadFactory.create()
    EventFactory.create(lead=lead, type="track", name="Paid")

    drain()

    assert _Receiver.received == []
    delivery = Delivery.objects.get()
    message = LOCAL_REFUSAL % ("127.0.0.1", "127.0.0.1")
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, None)
    assert delivery.last_error == message
    assert delivery.next_attempt_at is None
    assert StepRun.objects.get(node_id="h").error == f"Delivery failed after 1 try: {message}"
    assert Enrollment.objects.get().status == "failed"
    assert deliveries_due() == []


@pytest.mark.django_db
def test_a_name_that_resolves_to_loopback_is_refused_at_send(receiver):
    delivery = DeliveryFactory.create(target=f"http://localhost:{receiver}/hook")
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert _Receiver.received == []
    assert (delivery.status, delivery.last_error) == (
        "failed",
        LOCAL_REFUSAL % ("localhost", "127.0.0.1"),
    )


@pytest.mark.django_db
def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(settings, receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.0/8"]
    delivery = DeliveryFactory.create(
        key="step:41", target=f"http://localhost:{receiver}/hook?token=t", payload={"body": {}}
    )
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    path, headers, body = _Receiver.received[0]
    assert (path, body) == ("/hook?token=t", b"{}")
    assert headers["Host"] == f"localhost:{receiver}"
    assert headers["Idempotency-Key"] == headers["X-Leadflow-Delivery"] == "step:41"
    assert (delivery.status, delivery.response_code, delivery.attempts) == ("sent", 200, 1)
    assert (delivery.claimed_at, delivery.next_attempt_at) == (None, None)


@pytest.mark.django_db
def test_redirects_are_not_followed(settings, receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    _Receiver.status = 302
    _Receiver.headers_out = {"Location": "http://169.254.169.254/latest/meta-data/"}
    delivery = DeliveryFactory.create(target=f"http://127.0.0.1:{receiver}/hook")
    before = timezone.now()

    delivery_send(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert len(_Receiver.received) == 1
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("pending", 1, 302)
    assert delivery.last_error == "HTTP 302 (redirects are not followed)"
    assert delivery.claimed_at is None
    retry_at = delivery.next_attempt_at
    assert retry_at is not None
    assert (
        before + dt.timedelta(seconds=10) <= retry_at <= timezone.now() + dt.timedelta(seconds=10)
    )


def test_the_answer_is_read_up_to_the_limit(settings, receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    _Receiver.answer = b"x" * (4 * MAX_RESPONSE_BYTES)
    response = outbound_post(f"http://127.0.0.1:{receiver}/", body=b"{}", headers={})
    assert (response.status, len(response.body)) == (200, MAX_RESPONSE_BYTES)


def test_outbound_post_refuses_before_connecting(receiver):
    with pytest.raises(OutboundRefused):
        outbound_post(f"http://127.0.0.1:{receiver}/", body=b"{}", headers={})
    assert _Receiver.received == []


# --- claim, send, record -------------------------------------------------------------


@pytest.mark.django_db
def test_a_claimed_delivery_is_left_to_its_sender_until_the_claim_expires(settings, receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    now = timezone.now()
    delivery = DeliveryFactory.create(
        target=f"http://127.0.0.1:{receiver}/hook",
        attempts=1,
        claimed_at=now - dt.timedelta(seconds=5),
        next_attempt_at=now + dt.timedelta(seconds=DELIVERY_CLAIM_SECONDS - 5),
    )

    delivery_send(delivery_id=delivery.pk)  # a duplicate task message
    assert _Receiver.received == []
    assert deliveries_due() == []

    # The sender died: its claim runs out and beat sends it again.
    Delivery.objects.filter(pk=delivery.pk).update(
        claimed_at=now - dt.timedelta(seconds=DELIVERY_CLAIM_SECONDS + 1),
        next_attempt_at=now - dt.timedelta(seconds=1),
    )
    assert deliveries_due() == [delivery.pk]  # eager: sent by now
    delivery.refresh_from_db()
    assert len(_Receiver.received) == 1
    assert (delivery.status, delivery.attempts) == ("sent", 2)

    delivery_send(delivery_id=delivery.pk)  # sent is sent
    assert len(_Receiver.received) == 1


@pytest.mark.django_db
def test_a_new_delivery_whose_message_was_lost_is_sent_by_beat(settings, receiver):
    from flows.services import delivery_create

    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with transaction.atomic():  # no on-commit callback runs in this test's transaction
        delivery = delivery_create(
            kind="slack",
            key="lost",
            step=None,
            target=f"http://127.0.0.1:{receiver}/slack",
            payload={"text": "Hi"},
        )
    assert deliveries_due() == []
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert deliveries_due() == [delivery.pk]
    assert [(path, json.loads(body)) for path, _, body in _Receiver.received] == [
        ("/slack", {"text": "Hi"})
    ]


@pytest.mark.django_db(transaction=True)
def test_a_slow_receiver_blocks_no_other_write(settings, receiver):
    """The send runs with no transaction open: on SQLite a write waits for nobody,
    on PostgreSQL the delivery's row is not locked while the receiver thinks."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    _Receiver.hold = True
    delivery = DeliveryFactory.create(target=f"http://127.0.0.1:{receiver}/slow")

    def send():
        try:
            delivery_send(delivery_id=delivery.pk)
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert _Receiver.arrived.wait(10)
        with transaction.atomic():
            LeadFactory.create(email="meanwhile@acme.example")
            row = Delivery.objects.select_for_update(nowait=True).get(pk=delivery.pk)
        # Committed while the receiver still holds the request (it gives up after
        # 10 s, longer than SQLite's busy timeout would let this write wait).
        assert not _Receiver.answered.is_set()
        assert (row.status, row.attempts, row.claimed_at is not None) == ("pending", 1, True)
    finally:
        _Receiver.release.set()
        sender.join(20)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_code) == ("sent", 200)
    assert Lead.objects.filter(email="meanwhile@acme.example").count() == 1


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch):
    """A receiver with a certificate for "localhost" only, trusted by this process."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    _Receiver.received = []
    _Receiver.status = 200
    _Receiver.headers_out = {}
    _Receiver.answer = b"ok"
    _Receiver.hold = False
    _Receiver.arrived = threading.Event()
    _Receiver.answered = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_https_connects_to_the_checked_address_and_verifies_the_name(settings, tls_receiver):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.0/8"]

    response = outbound_post(f"https://localhost:{tls_receiver}/in", body=b"{}", headers={})
    with pytest.raises(OutboundFailed) as by_address:
        # The certificate names localhost, not the address.
        outbound_post(f"https://127.0.0.1:{tls_receiver}/in", body=b"{}", headers={})

    assert (response.status, response.body) == (200, b"ok")
    assert [(path, headers["Host"]) for path, headers, _ in _Receiver.received] == [
        ("/in", f"localhost:{tls_receiver}")
    ]
    assert str(by_address.value) == "SSLError: hostname '127.0.0.1' doesn't match 'localhost'"

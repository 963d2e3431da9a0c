"""Guessing passwords locks the account and the address for a while, whatever
the path; an API key sends at most its budget of requests per window."""

from __future__ import annotations

import base64
import re
import time

import pytest
from django.contrib.auth.models import User

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MISMATCH = "Your username and password didn't match. Please try again."
LOCKED = "Too many attempts. Please wait 15 minutes before you try again."


def _login(client, username, password, address="203.0.113.9", **extra):
    return client.post(
        "/login/", {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def rep():
    return UserFactory.create(username="rep", role="sales")


def test_ten_wrong_passwords_lock_the_account_even_for_the_right_one(client, rep, caplog):
    pages = [_login(client, "rep", f"guess-{n}").content.decode() for n in range(10)]

    right = _login(client, "rep", "pw-for-tests")

    assert [MISMATCH in page for page in pages] == [True] * 9 + [False]
    assert LOCKED in pages[9]
    assert [r.getMessage() for r in caplog.records if r.name == "leads.services.throttle"] == [
        "Too many failed sign-ins, locked for 900 s: user name 'rep'"
    ]
    assert right.status_code == 200
    assert LOCKED in right.content.decode()
    assert not _signed_in(client)
    # Another account from the same address is not locked by it.
    UserFactory.create(username="colleague", role="sales")
    assert _login(client, "colleague", "pw-for-tests").status_code == 302
    assert _signed_in(client)


def test_a_right_password_forgets_the_earlier_failures(client, rep):
    for n in range(9):
        _login(client, "rep", f"guess-{n}")
    assert _login(client, "rep", "pw-for-tests").status_code == 302
    client.logout()
    pages = [_login(client, "rep", f"again-{n}").content.decode() for n in range(9)]
    assert all(MISMATCH in page for page in pages)
    assert _login(client, "rep", "pw-for-tests").status_code == 302


def test_the_lockout_ends_by_itself(client, rep, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    # Long enough that the steps before the wait fit in it on a busy machine (with
    # one second, the first failure was sometimes forgotten before the second).
    settings.LOGIN_LOCKOUT_SECONDS = 3
    _login(client, "rep", "guess-1")
    locked = _login(client, "rep", "guess-2")
    assert "Too many attempts. Please wait 1 minute before you try again." in (
        locked.content.decode()
    )
    assert _login(client, "rep", "pw-for-tests").status_code == 200
    time.sleep(3.5)
    assert _login(client, "rep", "pw-for-tests").status_code == 302


def test_an_address_trying_many_accounts_is_locked(client, rep, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 3
    for name in ("alice", "bob", "carol"):
        _login(client, name, "password1", address="198.51.100.7")

    from_there = _login(client, "rep", "pw-for-tests", address="198.51.100.7")
    from_elsewhere = _login(client, "rep", "pw-for-tests", address="198.51.100.8")

    assert LOCKED in from_there.content.decode()
    assert from_elsewhere.status_code == 302


def test_behind_a_proxy_the_forwarded_address_counts(client, rep, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for name in ("alice", "bob"):
        _login(client, name, "x", address=proxy, HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7")

    # The client cannot choose its address by writing one to the left.
    spoofed = _login(
        client, "rep", "pw-for-tests", address=proxy, HTTP_X_FORWARDED_FOR="9.9.9.9, 198.51.100.7"
    )
    other = _login(
        client, "rep", "pw-for-tests", address=proxy, HTTP_X_FORWARDED_FOR="198.51.100.8"
    )

    assert LOCKED in spoofed.content.decode()
    assert other.status_code == 302


def test_the_admin_login_is_locked_too(client, settings):
    UserFactory.create(username="boss", role="admin")
    User.objects.filter(username="boss").update(is_staff=True, is_superuser=True)
    for n in range(10):
        _login(client, "boss", f"guess-{n}")

    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "boss", "password": "pw-for-tests", "next": "/admin/"},
        REMOTE_ADDR="192.0.2.1",
    )

    assert response.status_code == 200
    assert not _signed_in(client)


def test_a_password_reset_does_not_lift_the_lockout(client, rep, mailoutbox):
    for n in range(10):
        _login(client, "rep", f"guess-{n}")
    client.post("/account/password-reset/", {"email": "rep@example.com"})
    link = re.search(r"http://testserver(/account/password-reset/\S+/)", mailoutbox[0].body)
    assert link is not None
    set_url = client.get(link.group(1), follow=True).redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": "Harbor-Lime-77", "new_password2": "Harbor-Lime-77"}
    )

    assert done["Location"] == "/account/password-reset/done/"
    assert not _signed_in(client)
    assert LOCKED in _login(client, "rep", "Harbor-Lime-77").content.decode()
    assert not _signed_in(client)


def test_password_reset_mails_are_limited(client, rep, mailoutbox):
    answers = [
        client.post("/account/password-reset/", {"email": "rep@example.com"}) for _ in range(6)
    ]
    assert [answer.status_code for answer in answers] == [302] * 5 + [200]
    # Counted in fixed 15-minute windows: the wait is what is left of this one.
    wait = re.search(
        r"Too many attempts\. Please wait (\d+) minutes? before you try again\.",
        answers[5].content.decode(),
    )
    assert wait is not None
    assert 1 <= int(wait.group(1)) <= 15
    assert len(mailoutbox) == 5
    # The limit holds per account too, whichever address asks.
    other = client.post(
        "/account/password-reset/", {"email": "REP@example.com"}, REMOTE_ADDR="198.51.100.20"
    )
    assert other.status_code == 200
    assert len(mailoutbox) == 5


# --- API keys ------------------------------------------------------------------------


def _track(client, key):
    basic = base64.b64encode(f"{key}:".encode()).decode()
    return client.post(
        "/v1/track",
        {"userId": "42", "event": "Signed up"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {basic}",
    )


def _over_limit(response, limit, window):
    wait = int(response["Retry-After"])
    assert 1 <= wait <= window
    assert response.json() == {
        "error": {
            "code": "throttled",
            "message": f"This key sent more than {limit} requests in {window} seconds; "
            f"retry in {wait} seconds.",
            "fields": {},
        }
    }


def test_an_ingest_key_over_its_rate_gets_429_with_retry_after(
    client, ingest_key, full_key, settings
):
    settings.INGEST_RATE_LIMIT = 3
    settings.INGEST_RATE_WINDOW = 3600

    statuses = [_track(client, ingest_key).status_code for _ in range(3)]
    over = _track(client, ingest_key)

    assert statuses == [200, 200, 200]
    assert over.status_code == 429
    _over_limit(over, 3, 3600)
    # Each key has its own budget.
    assert _track(client, full_key).status_code == 200


def test_api_writes_with_a_key_share_its_budget(client, ingest_api, ingest_key, settings):
    settings.INGEST_RATE_LIMIT = 3
    settings.INGEST_RATE_WINDOW = 3600
    event = {"type": "track", "user_id": "42", "name": "Signed up"}

    assert [_track(client, ingest_key).status_code for _ in range(2)] == [200, 200]
    assert ingest_api.post("/api/v1/events/", event, format="json").status_code == 202
    over = ingest_api.post("/api/v1/events/", event, format="json")

    assert over.status_code == 429
    wait = int(over["Retry-After"])
    assert 1 <= wait <= 3600
    assert over.json() == {
        "error": {
            "code": "throttled",
            "message": f"Request was throttled. Expected available in {wait} seconds.",
            "fields": {},
        }
    }
    assert _track(client, ingest_key).status_code == 429


def test_people_signed_in_are_not_limited_by_key_budgets(admin_api, settings):
    settings.INGEST_RATE_LIMIT = 1
    settings.INGEST_RATE_WINDOW = 3600
    event = {"type": "track", "user_id": "42", "name": "Signed up"}
    statuses = [
        admin_api.post("/api/v1/events/", event, format="json").status_code for _ in range(3)
    ]
    assert statuses == [202, 202, 202]

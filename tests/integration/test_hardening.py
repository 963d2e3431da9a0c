"""What an operator meets when a part is down, seen from outside a real server."""

from __future__ import annotations

import re

import pytest
import requests

from leads.models import Event
from tests.factories import UserFactory
from tests.integration.conftest import database_url, free_port, web_process

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _sign_in(url: str, username: str, password: str) -> requests.Response:
    session = requests.Session()
    page = session.get(f"{url}/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None, page.text[:300]
    return session.post(
        f"{url}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{url}/login/"},
        allow_redirects=False,
        timeout=10,
    )


def test_people_sign_in_while_redis_is_down(tmp_path):
    # Failed sign-ins are counted in Redis; without it nothing can be locked,
    # and nobody is kept out either.
    UserFactory.create(username="rep", role="sales")
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "LEADFLOW_DATA_DIR": str(tmp_path / "data"),
    }
    with web_process(env, tmp_path / "web.log") as url:
        wrong = _sign_in(url, "rep", "not-it")
        right = _sign_in(url, "rep", "pw-for-tests")

    assert wrong.status_code == 200
    assert "Your username and password didn't match. Please try again." in wrong.text
    assert (right.status_code, right.headers["Location"]) == (302, "/")


def test_with_the_broker_down_one_request_waits_for_it_not_every_one(tmp_path, ingest_key):
    # Each send tries the broker several times; after one failed, the process
    # stops trying for a few seconds (the sweeper sends the events later).
    env = {
        "DATABASE_URL": database_url(),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "LEADFLOW_DATA_DIR": str(tmp_path / "data"),
    }
    log = tmp_path / "web.log"
    with web_process(env, log) as url:
        answers = [
            requests.post(
                f"{url}/v1/track",
                json={"userId": f"u-{n}", "event": "Signed up", "messageId": f"m-{n}"},
                auth=(ingest_key, ""),
                timeout=10,
            ).status_code
            for n in range(10)
        ]

    assert answers == [200] * 10
    assert Event.objects.filter(type="track").count() == 10
    tried = [line for line in log.read_text().splitlines() if "broker unreachable," in line]
    assert len(tried) == 1, tried

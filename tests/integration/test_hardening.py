"""What an operator meets when a part is down, seen from outside a real server."""

from __future__ import annotations

import re

import pytest
import requests

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

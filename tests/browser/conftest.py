"""Browser tests: Playwright driving Debian's Chromium (never a downloaded
browser) against pytest-django's live server. A failing test leaves a
screenshot under test-results/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.factories import UserFactory
from tests.integration.conftest import celery_worker_process  # noqa: F401  (a fixture)

# Playwright's sync API runs an event loop in the test thread; Django refuses
# database calls from a thread with a running loop unless told otherwise.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Browser tests need Chromium: apt-get install -y chromium")
    if not (ROOT / "static" / "build" / "builder.js").exists():
        pytest.fail("The frontend bundle is missing: run `make assets` (make test does).")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@pytest.fixture
def login(live_server: Any) -> Callable[[Page, str], Any]:
    """Sign a new user with ``role`` in through the login form."""

    def _login(page: Page, role: str, username: str | None = None) -> Any:
        user = UserFactory.create(username=username or f"{role}-user", role=role)
        user.set_password(PASSWORD)
        user.save()
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return user

    return _login

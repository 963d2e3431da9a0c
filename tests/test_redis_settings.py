"""Tests that run two at a time each get a Redis database of their own
(``config.settings``), as each gets its own test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config.settings import redis_database_moved

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.REDIS_URL); print(settings.CELERY_BROKER_URL); "
    "print(settings.CACHES['default']['LOCATION'])"
)


def settings_seen(**env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def test_a_database_is_moved_by_its_number():
    assert redis_database_moved("redis://127.0.0.1:6379/3", 2) == "redis://127.0.0.1:6379/5"
    assert redis_database_moved("redis://127.0.0.1:6379", 1) == "redis://127.0.0.1:6379/1"
    assert (
        redis_database_moved("redis://:pw@redis:6379/0?ssl=1", 1)
        == "redis://:pw@redis:6379/1?ssl=1"
    )
    # Nothing to move: a path that is not a database's number.
    assert redis_database_moved("unix:///run/redis.sock", 1) == "unix:///run/redis.sock"


def test_each_test_worker_has_its_own_database_and_a_server_has_the_one_it_names():
    url = "redis://127.0.0.1:6379/3"
    assert settings_seen(REDIS_URL=url) == [url, url, url]
    moved = "redis://127.0.0.1:6379/5"
    assert settings_seen(REDIS_URL=url, PYTEST_XDIST_WORKER="gw1") == [moved, moved, moved]

"""``DATABASE_PREPARE_THRESHOLD``: the worker's hot-path statements are prepared
on PostgreSQL after this many uses, never with 0 (a pooler in transaction mode
that cannot keep prepared statements; SCALING.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"
)

ROOT = Path(__file__).resolve().parent.parent
# Runs one hot-path statement ten times and another once, prepared at once; then
# says what psycopg and the server did, and how the session plans and keeps
# prepared statements.
PROBE = """
from django.db import connection
from core import prepared
for _ in range(10):
    prepared.fetch("SELECT %s::int + 1", [1])
prepared.fetch("SELECT %s::int + 2", [1], at_once=True)
print(connection.connection.prepare_threshold)
print(prepared.fetch("SELECT count(*) FROM pg_prepared_statements", [])[0][0])
print(prepared.fetch("SELECT current_setting('plan_cache_mode')", [])[0][0])
print(connection.connection.prepared_max)
"""


def _probe(**env: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", PROBE],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_hot_path_statements_are_prepared_by_default_and_planned_once():
    assert _probe(DATABASE_PREPARE_THRESHOLD="5") == ["5", "2", "force_generic_plan", "600"]


def test_zero_prepares_nothing_for_a_pooler_in_transaction_mode():
    # Not even what asks to be prepared at once; the session is left as it is.
    assert _probe(DATABASE_PREPARE_THRESHOLD="0") == ["None", "0", "auto", "100"]

"""What the benchmark scripts share: the app's environment and ``manage.py``, a
scratch PostgreSQL database and Redis broker, the app's server processes, and
the record in bench/RESULTS.md."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import redis
import requests
from psycopg import conninfo as pg_conninfo
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
HOST = "127.0.0.1"

RESULTS_HEADER = """\
# Benchmarks

Each section is one recorded run on the machine it names; compare runs on the
same machine only.
"""


# --- the app's environment ------------------------------------------------------


def app_env(**settings: str | None) -> dict[str, str]:
    """This process's environment with ``settings`` set, or removed where None.

    A developer's shell must not change what is measured: no query log, no
    inline task execution."""
    env = {**os.environ, "DEBUG": "false", "CELERY_TASK_ALWAYS_EAGER": "false"}
    for name, value in settings.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def django_setup(env: dict[str, str]) -> None:
    """Django in this process, with ``env`` as its whole environment."""
    for name in os.environ.keys() - env.keys():
        del os.environ[name]
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py *args`` and return what it printed."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def app_migrated(*, database_url: str, data_dir: str) -> dict[str, str]:
    """The environment of the app on ``database_url`` (no Redis: the cache and
    broker of the embedded mode under ``data_dir``), its database migrated."""
    env = app_env(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        REDIS_URL=None,
        LEADFLOW_DATA_DIR=data_dir,
        PYTHONUNBUFFERED="1",
    )
    print("migrating…", flush=True)
    manage(env, "migrate", "--noinput")
    return env


# --- PostgreSQL and Redis ---------------------------------------------------------


def database_ensure(conninfo: str) -> None:
    """Create the scratch database if it is missing; never one of the server's own."""
    params = pg_conninfo.conninfo_to_dict(conninfo)
    name = str(params.get("dbname") or "")
    if name in ("", "postgres", "test", "template0", "template1"):
        raise SystemExit(f"refusing to fill the database {name!r}: name a scratch database")
    try:
        psycopg.connect(conninfo).close()
        return
    except psycopg.OperationalError as exc:
        if f'database "{name}" does not exist' not in str(exc):
            raise
    admin = pg_conninfo.make_conninfo(conninfo, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def vacuum_analyze(conninfo: str, tables: Sequence[str]) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))


def postgres_settings(conninfo: str, names: Sequence[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    with psycopg.connect(conninfo) as conn:
        for name in names:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            settings[name] = str(row[0]) if row else "?"
    return settings


def postgres_version(conninfo: str) -> str:
    return postgres_settings(conninfo, ("server_version",))["server_version"].split()[0]


def broker_connect(redis_url: str) -> redis.Redis:
    """The scratch Redis database the run flushes; never database 0."""
    broker = redis.Redis.from_url(redis_url)
    if int(broker.connection_pool.connection_kwargs.get("db", 0)) == 0:
        raise SystemExit("refusing to flush Redis database 0: name a scratch database")
    return broker


# --- server processes -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Process:
    """A server process of the app, its output kept in a file read only if it fails."""

    name = "process"

    def __init__(self, *, command: list[str], env: dict[str, str]):
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            # A warm shutdown: the worker finishes its tasks, gunicorn its requests.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


class Gunicorn(Process):
    """``config.wsgi`` on 2 workers of ``threads`` threads each."""

    name = "gunicorn"

    def __init__(self, *, env: dict[str, str], port: int, threads: int):
        self.port = port
        super().__init__(
            command=[
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--workers",
                "2",
                "--threads",
                str(threads),
                "--bind",
                f"{HOST}:{port}",
            ],
            env=env,
        )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{HOST}:{self.port}/healthz"
        while time.monotonic() < deadline:
            if not self.alive():
                raise SystemExit(f"gunicorn exited:\n{self.output()}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s:\n{self.output()}")


# --- the record ---------------------------------------------------------------------


def record(text: str, *, header: str = RESULTS_HEADER) -> None:
    """Append a section to bench/RESULTS.md, written with ``header`` if new."""
    if not RESULTS.exists():
        RESULTS.write_text(header)
    # One append of the whole section, so another bench appending to the same
    # file never interleaves with it.
    with RESULTS.open("a") as out:
        out.write("\n" + text)

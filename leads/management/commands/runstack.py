"""Run web, Celery worker and Celery beat together in the foreground.

Ctrl-C (or SIGTERM) stops all three; if one of them dies, the others are stopped
too, so the stack is never left half-running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from config.celery import QUEUES

DEMO_LOGINS = (
    "Demo logins (password: leadflow): admin (admin), marketer (marketer), sales (sales rep)\n"
)


class Command(BaseCommand):
    help = "Start web (gunicorn), a Celery worker and Celery beat; stop them all on Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument(
            "--demo-logins", action="store_true", help="Print the demo logins once up."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        bind = f"{options['host']}:{options['port']}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        commands = {
            "web": [
                python,
                "-m",
                "gunicorn",
                # As in production: keep-alive, and an access log without API keys.
                "--config",
                str(settings.BASE_DIR / "config" / "gunicorn.py"),
                "config.wsgi:application",
                "--bind",
                bind,
                "--graceful-timeout",
                "5",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--queues",
                ",".join(QUEUES),
                "--concurrency",
                str(options["concurrency"]),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILE,
            ],
        }
        processes = {
            name: subprocess.Popen(cmd, env=env, start_new_session=True)
            for name, cmd in commands.items()
        }
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        url = f"http://{bind}/healthz"
        announced = False
        try:
            while not stopping:
                dead = [n for n, p in processes.items() if p.poll() is not None]
                if dead:
                    self.stderr.write(f"{', '.join(dead)} exited; stopping the rest.")
                    break
                if not announced and _answers(url):
                    announced = True
                    logins = DEMO_LOGINS if options["demo_logins"] else ""
                    self.stdout.write(
                        f"\nLeadflow is running at http://{bind}/\n{logins}"
                        "Press Ctrl-C to stop web, worker and beat.\n"
                    )
                    self.stdout.flush()
                time.sleep(0.5)
        finally:
            _stop_all(processes)
        failed = [n for n, p in processes.items() if p.returncode not in (0, -2, -15)]
        if failed and not stopping:
            raise SystemExit(1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
            return bool(response.status == 200)
    except OSError:
        return False


def _stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

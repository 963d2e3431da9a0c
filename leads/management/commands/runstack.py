"""Run web, Celery worker and Celery beat together in the foreground.

Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stops all three; if one of them
dies, the others are stopped too, so the stack is never left half-running. No
process outlives this one: on Linux each child is signalled by the kernel when
its parent dies (and this command when ``make`` dies), even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
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
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop)
        # When make (or whatever started us) is killed, stop as on Ctrl-C.
        die_with_parent(signal.SIGTERM)
        processes = {
            # Each child leads its own process group: Ctrl-C in the terminal
            # reaches this command only, which stops them in order.
            name: subprocess.Popen(
                cmd,
                env=env,
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid()),
            )
            for name, cmd in commands.items()
        }
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


# prctl(2): the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int) -> bool:
    """Have the kernel send ``signum`` to this process when its parent dies
    (Linux; elsewhere nothing happens and False is returned)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _child_setup(parent: int) -> Callable[[], None]:
    def setup() -> None:
        # SIGTERM, not SIGKILL: the worker then hands back its messages and its
        # pool children go with it (Celery sets their own parent-death signal).
        die_with_parent(signal.SIGTERM)
        if os.getppid() != parent:
            # The parent died before the line above took effect.
            os.kill(os.getpid(), signal.SIGTERM)

    return setup


def _stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each main process only: each stops its own children in order
    (the Celery worker, signalled as a whole group, hung restoring its
    messages). What is still there after 20 s is killed, group and all."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Anything left in its group (a pool child, a gunicorn worker) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

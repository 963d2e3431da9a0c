"""Sending email: emails per second through the worker to a local SMTP server,
against a raw smtplib loop sending the same rendered messages in the same run,
and the time to render one email of a 20-block template.

A scratch PostgreSQL database gets ``--emails`` leads (confirmed consent) and a
marketing template of 20 blocks (headings, text with merge tags, buttons,
images, two columns). The SMTP server is aiosmtpd in this process, accepting
everything.

1. Render. ``emails.rendering.email_render`` for ``--renders`` leads in turn,
   with the tracking the sender adds (link wrapping, the pixel, the unsubscribe
   URL), timed call by call; the median and p95 are reported.
2. Worker. ``--emails`` sends are queued (``emails.sending.email_send_queue``,
   one Celery message each, while no worker runs); then ONE Celery worker
   process starts (``celery -A config worker`` on the app's queues, prefork,
   ``--concurrency`` children) and the rate is the sends divided by the time
   from the first ``sent_at`` to the last. Every send must be sent and the
   server must hold exactly one message per lead.
3. Baseline. The messages the worker sent, rendered again by the same code
   before the clock starts, are sent by ``--concurrency`` processes, each a
   plain ``smtplib`` loop over one connection (``sendmail`` per message) on its
   share; the rate is messages divided by the wall time of the loops. It leaves
   out what the worker does besides: the claim (the lead's lock, the rules at
   send time, the rate counter), rendering, recording sent, Celery.

    .venv/bin/python bench/email_send.py            # print the results
    .venv/bin/python bench/email_send.py --record   # and append them to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing import Pool

from machine import machine
from stack import (
    ROOT,
    app_env,
    broker_connect,
    database_ensure,
    django_setup,
    manage,
    postgres_version,
    record,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/lf_bench_email"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"


def twenty_blocks() -> list[dict[str, object]]:
    blocks: list[dict[str, object]] = []
    for n in range(4):
        blocks += [
            {"type": "heading", "text": f"Part {n + 1}, {{{{ first_name }}}}", "level": 2},
            {
                "type": "text",
                "text": 'Hello {{ first_name | default: "there" }} at {{ company_name }}: '
                "here is **what changed** this week, and what to try next.",
            },
            {"type": "button", "label": "Read more", "url": f"https://example.com/read/{n}"},
            {"type": "image", "src": f"https://example.com/img/{n}.png", "alt": "Chart"},
            {
                "type": "columns",
                "left": [{"type": "text", "text": "Left {{ job_title }}"}],
                "right": [{"type": "text", "text": "Right {{ last_name }}"}],
            },
        ]
    return blocks


def _raw_loop(args: tuple[int, list[tuple[str, list[str], bytes]]]) -> int:
    import smtplib

    port, messages = args
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for from_addr, to_addrs, data in messages:
            smtp.sendmail(from_addr, to_addrs, data)
    return len(messages)


def run(args: argparse.Namespace) -> str:
    database_ensure(args.database_url.replace("postgres://", "postgresql://"))
    broker = broker_connect(args.redis_url)
    broker.flushdb()
    # Run as a script, the folder on the path is bench/; the tests' SMTP server
    # lives at the project's root.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.emails.smtp import SMTPServer

    # aiosmtpd logs every command at INFO: thousands of lines a second.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    server = SMTPServer()
    server.__enter__()
    env = app_env(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(server.port),
        SITE_URL="http://127.0.0.1:8000",
        PYTHONUNBUFFERED="1",
    )
    print("migrating…", flush=True)
    manage(env, "migrate", "--noinput")
    django_setup(env)

    from django.db import connection

    from emails.models import EmailSend, EmailSettings, EmailTemplate, Sender, SendStatus
    from emails.rendering import email_render
    from emails.sending import Claimed, email_message_build, email_send_queue
    from emails.tracking import link_wrapper, open_pixel_url
    from leads.models import ConsentState, Lead

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE emails_emailsend, emails_emailtemplate, emails_sender, "
            "emails_emailsettings, leads_lead CASCADE"
        )
    EmailSettings.objects.create(
        postal_address="Leadflow GmbH, Hauptstr. 1, 10115 Berlin", sends_per_minute=1_000_000
    )
    sender = Sender.objects.create(name="Bench", address="bench@example.com")
    template = EmailTemplate.objects.create(
        name="Bench", subject="News for {{ first_name }}", sender=sender, blocks=twenty_blocks()
    )
    leads = Lead.objects.bulk_create(
        Lead(
            email=f"lead{n}@example.com",
            first_name=f"Ada{n}",
            last_name="Lovelace",
            company_name="Analytical Engines",
            job_title="Engineer",
            consent_state=ConsentState.CONFIRMED,
        )
        for n in range(args.emails)
    )

    # 1. Rendering.
    timings = []
    for n in range(args.renders):
        lead = leads[n % len(leads)]
        probe = EmailSend(token=f"t{n:031d}", key=f"render:{n}", message_id=f"{n}@bench")
        started = time.perf_counter()
        email_render(
            template=template,
            lead=lead,
            unsubscribe_url="http://127.0.0.1:8000/unsubscribe/x/",
            link_wrap=link_wrapper(send=probe),
            open_pixel_url=open_pixel_url(send=probe),
            postal_address="Leadflow GmbH, Hauptstr. 1, 10115 Berlin",
        )
        timings.append((time.perf_counter() - started) * 1000)
    render_median = statistics.median(timings)
    render_p95 = statistics.quantiles(timings, n=20)[-1]
    print(f"render: median {render_median:.2f} ms, p95 {render_p95:.2f} ms", flush=True)

    # 2. The worker.
    for lead in leads:
        email_send_queue(key=f"bench:{lead.pk}", lead=lead, template=template)
    load_before = os.getloadavg()[0]
    log = tempfile.TemporaryFile()  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--queues",
            "deliveries,ingest,flows,periodic",
            "--concurrency",
            str(args.concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    try:
        while EmailSend.objects.filter(status=SendStatus.SENT).count() < args.emails:
            if worker.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"the worker stopped short:\n{log.read().decode()[-4000:]}")
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    sent = EmailSend.objects.filter(status=SendStatus.SENT).order_by("sent_at")
    first = sent.values_list("sent_at", flat=True).first()
    last = sent.values_list("sent_at", flat=True).last()
    assert first is not None
    assert last is not None
    worker_seconds = max((last - first).total_seconds(), 1e-6)
    worker_rate = (args.emails - 1) / worker_seconds
    received = [rcpt for message in server.received for rcpt in message.rcpt_tos]
    assert len(received) == args.emails == len(set(received)), "one message per lead"
    print(f"worker: {worker_rate:.0f} emails/s", flush=True)

    # 3. The raw loop, on the same messages rendered again outside the clock.
    messages = []
    for send in EmailSend.objects.select_related("lead").order_by("pk"):
        claimed = Claimed(
            send=send,
            lead=send.lead,
            template=template,
            postal_address="Leadflow GmbH, Hauptstr. 1, 10115 Berlin",
        )
        message = email_message_build(claimed=claimed)
        messages.append(
            (message.from_email, message.recipients(), message.message().as_bytes(linesep="\r\n"))
        )
    shares = [(server.port, messages[i :: args.concurrency]) for i in range(args.concurrency)]
    started = time.perf_counter()
    with Pool(args.concurrency) as pool:
        counted = sum(pool.map(_raw_loop, shares))
    raw_seconds = time.perf_counter() - started
    raw_rate = counted / raw_seconds
    load_after = os.getloadavg()[0]
    server.__exit__()
    ratio = worker_rate / raw_rate
    print(f"raw smtplib: {raw_rate:.0f} emails/s; ratio {ratio:.2f}", flush=True)

    m = machine()
    now = dt.datetime.now(dt.UTC)
    return (
        f"## email: {now:%Y-%m-%d %H:%M} UTC\n\n"
        "`bench/email_send.py`: emails per second through one Celery worker to a local SMTP "
        "server (aiosmtpd) against raw `smtplib` loops sending the same rendered "
        "messages, and the render time of a 20-block template.\n\n"
        f"- machine: {m['arch']}, {m['cores']} cores, {m['ram']} RAM; Python {m['python']}, "
        f"PostgreSQL {postgres_version(args.database_url.replace('postgres://', 'postgresql://'))}"
        f"; load average (1 min) {load_before:.2f} at the worker's start, "
        f"{load_after:.2f} at the end (a machine shared with other work)\n"
        f"- parameters: --emails {args.emails} --concurrency {args.concurrency} "
        f"--renders {args.renders}\n\n"
        "| what | result | goal |\n|---|---:|---|\n"
        f"| worker, emails/s | {worker_rate:.0f} | |\n"
        f"| raw smtplib loops, emails/s | {raw_rate:.0f} | |\n"
        f"| ratio | {ratio:.2f}x | ≥ 0.5x |\n"
        f"| render, median ms | {render_median:.2f} | < 5 ms |\n"
        f"| render, p95 ms | {render_p95:.2f} | |\n"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--renders", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--record", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    text = run(args)
    print(text)
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

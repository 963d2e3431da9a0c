"""Time to render one email of a 20-block template for a lead (goal: < 5 ms median).

Renders the same template for a different lead each time, in-process, with a
footer, an open pixel and every link wrapped for click tracking, as a send does.
Beside it, in the same run: the same renders compiling the MJML for every email
(what rendering would cost without the per-revision cache), and ``mjml2html``
alone on the template's MJML. No database is read: the template and the leads
are unsaved rows, the postal address is given.

    .venv/bin/python bench/email_render.py              # 2,000 renders
    .venv/bin/python bench/email_render.py --record     # the same, recorded in RESULTS.md

``bench/email_send.py`` reuses ``twenty_block_template`` and ``render_times``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from machine import machine
from stack import app_env, django_setup, record


def twenty_block_template() -> Any:
    """A marketing template of 20 blocks with merge tags in most of them (unsaved,
    but with an id and revision so the compiled form is kept like a saved one's)."""
    from django.utils import timezone

    from emails.models import EmailKind, EmailTemplate

    blocks: list[dict[str, Any]] = [
        {"type": "heading", "text": 'Hallo {{ first_name | default: "there" }}!'},
        {
            "type": "text",
            "text": "Thanks for trying **{{ company_name }}** on Leadflow. Here is what "
            'teams in {{ industry | default: "your industry" }} do first.',
        },
        {"type": "image", "src": "https://acme.example/hero.png", "alt": "Leadflow", "width": 552},
        {"type": "button", "label": "Open your dashboard", "url": "https://acme.example/app"},
        {"type": "divider"},
        {"type": "heading", "text": "Three things to try", "level": 2},
        {"type": "text", "text": "1. Import your leads\n2. Build a segment\n3. Start a flow"},
        {
            "type": "columns",
            "left": [
                {"type": "heading", "text": "Segments", "level": 2},
                {"type": "text", "text": "Group leads by [what they do](https://acme.example/s)."},
            ],
            "right": [
                {"type": "heading", "text": "Flows", "level": 2},
                {"type": "text", "text": "React to it [in minutes](https://acme.example/f)."},
            ],
        },
        {"type": "spacer", "height": 16},
        {"type": "text", "text": 'Your plan: {{ custom.plan | fallback: "trial" }}.'},
        {"type": "button", "label": "See pricing", "url": "https://acme.example/pricing"},
        {"type": "divider"},
        {"type": "text", "text": 'Questions? {{ owner.first_name | default: "We" }} will help.'},
        {
            "type": "image",
            "src": "https://acme.example/team.png",
            "alt": "The team",
            "link": "https://acme.example/team",
        },
        {"type": "heading", "text": "Upcoming webinar", "level": 2},
        {"type": "text", "text": 'Thursday at 16:00 for {{ job_title | default: "marketers" }}.'},
        {
            "type": "button",
            "label": "Save my seat",
            "url": "https://acme.example/webinar?e={{ email | url_encode }}",
        },
        {"type": "spacer", "height": 8},
        {"type": "text", "text": "Cheers,\n\nThe Leadflow team"},
        {"type": "divider"},
    ]
    assert len(blocks) == 20
    return EmailTemplate(
        pk=1,
        name="Bench",
        subject='{{ first_name | default: "Hi" }}, your first week',
        preheader="Three things to try at {{ company_name }}",
        kind=EmailKind.MARKETING,
        blocks=blocks,
        revision=1,
        updated_at=timezone.now(),
    )


def leads(count: int) -> list[Any]:
    from leads.models import Lead

    return [
        Lead(
            id=index + 1,
            email=f"lead{index}@acme.example",
            first_name=f"Lea{index}",
            company_name=f"Firma {index} & Co",
            industry="Software",
            job_title="CMO",
            custom_fields={"plan": "pro"},
            language="en",
        )
        for index in range(count)
    ]


def render_times(
    template: Any, people: Sequence[Any], *, compile_each: bool = False
) -> list[float]:
    """Seconds per ``email_render`` for each lead, with footer, pixel and wrapped links."""
    from emails import rendering

    times = []
    for lead in people:
        if compile_each:
            rendering._CACHE.clear()
        started = time.perf_counter()
        rendering.email_render(
            template=template,
            lead=lead,
            unsubscribe_url=f"https://app.example/u/{lead.pk}",
            link_wrap=lambda url: "https://app.example/c/tok?u=" + url,
            open_pixel_url=f"https://app.example/o/{lead.pk}.gif",
            postal_address="Acme GmbH\nHauptstraße 1\n10115 Berlin",
        )
        times.append(time.perf_counter() - started)
    return times


def mjml_times(template: Any, runs: int) -> list[float]:
    from mjml import mjml2html

    from emails import rendering

    source = rendering._mjml(template, rendering._Tags(), footer=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        mjml2html(source)
        times.append(time.perf_counter() - started)
    return times


def _ms(values: list[float], quantile: float = 0.5) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=2000)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        django_setup(
            app_env(
                DJANGO_SETTINGS_MODULE="config.settings",
                DATABASE_URL=None,
                REDIS_URL=None,
                LEADFLOW_DATA_DIR=data_dir,
            )
        )
        load_start = os.getloadavg()[0]
        template = twenty_block_template()
        people = leads(args.renders)
        render_times(template, people[:50])  # warm-up: compile, parse the tags
        cached = render_times(template, people)
        uncached = render_times(template, people[: max(50, args.renders // 10)], compile_each=True)
        mjml = mjml_times(template, max(50, args.renders // 10))
        load_end = os.getloadavg()[0]
    info = machine()
    median = statistics.median(cached) * 1000
    rows = [
        ("email_render, compiled once per revision", cached),
        ("email_render, compiling the MJML every time", uncached),
        ("mjml2html alone (the template's MJML)", mjml),
    ]
    table = "\n".join(
        f"| {name} | {len(values)} | {_ms(values):.3f} | {_ms(values, 0.95):.3f} |"
        for name, values in rows
    )
    text = (
        f"## email rendering: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        "`bench/email_render.py`: one email of a 20-block marketing template rendered for "
        "a lead (merge tags, footer, open pixel, every link wrapped), in-process.\n\n"
        f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; Python "
        f"{info['python']}; load average (1 min) {load_start:.2f} at the start, "
        f"{load_end:.2f} at the end (a shared machine)\n\n"
        "| what | renders | median ms | p95 ms |\n|---|---:|---:|---:|\n"
        f"{table}\n\n"
        f"Median {median:.3f} ms per email (goal < 5 ms); compiling the MJML for every "
        f"email would cost {statistics.median(uncached) / statistics.median(cached):.1f} times as "
        "much.\n"
    )
    print(text)
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The flow builder with a large flow: how long a 200-node, 250-edge flow takes
to load and become interactive in a real browser, and to save.

A scratch PostgreSQL database gets a marketer and one flow whose draft is a
generated graph that passes ``graph_validate``: ``--nodes`` nodes of the
registry's own types with valid configs (app-event, page, email, form, tag,
score and grade triggers; score adjustments in "fit" and "engagement", tags,
waits, sales tasks, stage changes; if / else on simple condition trees and
wait-until branches; exits), ``--edges`` edges, acyclic, every node reachable
from a trigger, each output used at most once, laid out on a grid of layers.
The app runs under gunicorn (2 workers of 2 threads, PostgreSQL, Redis as
cache and broker, ``DEBUG`` off, ``collectstatic`` run as the Docker image
does, static files served by WhiteNoise as the settings say), and Playwright
drives Debian's headless Chromium (``/usr/bin/chromium``, a 1280x800 window)
after logging in through ``/login/``.

Each of ``--runs`` runs opens ``/flows/<id>/`` twice: cold, in a fresh browser
context (empty HTTP cache, as a first visit), then warm, in the same context
after ``about:blank`` (bundle and CSS from the cache). Everything is timed in the
page, in milliseconds from navigation start (``performance.timeOrigin``):

- HTML: the page's ``responseEnd`` (navigation timing);
- DOMContentLoaded (its end): the deferred scripts (htmx, app.js, builder.js)
  have run and React has been asked to mount the canvas;
- drawn: the first animation frame after all ``--nodes`` ``.react-flow__node``
  elements are in the document and measured by React Flow (no longer
  ``visibility: hidden``), seen by a MutationObserver;
- interactive: the harness then clicks (a real mouse click through the browser's
  input pipeline) the centre of the node nearest the centre of the canvas, and
  interactive is the moment that node gets ``.lf-selected``. This includes the
  harness's own delay between "drawn" and the click reaching the page (shown as
  its own column), so it is an upper bound of when a click made as the nodes
  appear is answered;
- settings: the click's other answer, the node's settings form (fetched by htmx)
  in the side panel, from the click;
- long tasks: the main thread's tasks of over 50 ms (Long Tasks API) that
  started before interactive, summed.

Saving is timed on a loaded page, ``--runs`` times, alternating two ways:
in the page, the canvas's autosave request (``PUT /api/v1/flows/<id>/draft/``
with the whole graph and the current revision, JSON-encoded, with the page's
CSRF token) from before encoding the body to the parsed answer; and the server
alone, the same PUT through ``requests`` with the session's cookies, body encoded
before the clock. ``GET /flows/<id>/`` through ``requests`` shows the server's
share of the load. Medians and maxima are reported; the goals are interactive
under 1 s and a save under 300 ms.

    .venv/bin/python bench/builder.py                  # print the table
    .venv/bin/python bench/builder.py --record         # and append to bench/RESULTS.md
    .venv/bin/python bench/builder.py --runs 2         # a quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from machine import machine
from playwright.sync_api import BrowserContext, Page, ViewportSize, sync_playwright
from psycopg import conninfo as pg_conninfo
from stack import (
    HOST,
    RESULTS,
    ROOT,
    Gunicorn,
    app_env,
    broker_connect,
    database_ensure,
    django_setup,
    free_port,
    manage,
    postgres_version,
    record,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadflow_bench_builder"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
CHROMIUM = Path("/usr/bin/chromium")
BUNDLE = ROOT / "static" / "build" / "builder.js"
FRONTEND = ROOT / "frontend" / "src"
# As tests/browser/conftest.py launches it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
USERNAME = "bench-builder"
PASSWORD = "bench builder password 1"
FLOW_PREFIX = "bench: "
GOAL_INTERACTIVE_MS = 1000.0
GOAL_SAVE_MS = 300.0
# Grid of the generated layout, as the flow templates space their steps.
ROW = 140
COLUMN = 280
# A new node hangs off one of the most recent open outputs, and a merge joins a
# node a little further down: long branching chains, as people draw flows.
PARENT_WINDOW = 12
MERGE_WINDOW = 24
TIMEOUT_MS = 30_000


# --- the graph --------------------------------------------------------------------

EVENTS = ["Signed up for trial", "Created project", "Invited teammate", "Booked a call"]
PAGES = ["/pricing", "/features/lead-scoring", "/demo", "/docs/quickstart"]
CAMPAIGNS = ["Welcome 1/3", "Webinar invitation", "Monthly newsletter", "Pricing follow-up"]
FORMS = ["Demo request", "Contact sales", "Ebook: lead scoring"]
TAGS = ["webinar-2026", "trial", "hot-lead", "enterprise", "churn-risk", "newsletter"]
REASONS = {
    "fit": ["Decision maker", "Company of 50 to 1,000", "Works in marketing", "Target country"],
    "engagement": ["Visited pricing", "Opened an email", "Clicked a link", "Went quiet"],
}
TITLES = ["Call {lead}", "Follow up with {lead}", "Demo for {lead}", "{lead} looked at pricing"]
STAGES = ["lead", "mql", "sql"]
CONDITIONS: list[dict[str, Any]] = [
    {"all": [{"field": "job_title", "op": "contains", "value": "VP"}]},
    {"all": [{"field": "company_size", "op": "between", "value": [50, 1000]}]},
    {
        "all": [
            {"field": "stage", "op": "is_not", "value": "customer"},
            {"field": "stage", "op": "is_not", "value": "disqualified"},
        ]
    },
    {
        "any": [
            {"field": "job_title", "op": "contains", "value": "Founder"},
            {"field": "job_title", "op": "in", "value": ["CEO", "CTO", "CMO"]},
        ]
    },
]


def trigger_config(rng: random.Random) -> tuple[str, dict[str, Any]]:
    kind = rng.choice(
        [
            *("app.event", "app.event", "page.visited", "email.activity", "form.submitted"),
            *("tag.added", "score.threshold", "grade.changed", "lead.created"),
        ]
    )
    if kind == "app.event":
        config: dict[str, Any] = {"event": rng.choice(EVENTS)}
        if rng.random() < 0.3:
            config["where"] = {"plan": {"op": "is", "value": "team"}}
        return kind, config
    if kind == "page.visited":
        return kind, {"url": {"op": "contains", "value": rng.choice(PAGES)}}
    if kind == "email.activity":
        return kind, {"activity": "clicked", "campaign": rng.choice(CAMPAIGNS)}
    if kind == "form.submitted":
        return kind, {"form": rng.choice(FORMS), "once_per_lead": True}
    if kind == "tag.added":
        return kind, {"tag": rng.choice(TAGS)}
    if kind == "score.threshold":
        return kind, {"threshold": rng.choice([30, 50, 80]), "category": "fit"}
    if kind == "grade.changed":
        return kind, {"grade": "hot"}
    return kind, {}


def step_config(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A node with one output."""
    roll = rng.random()
    if roll < 0.35:
        category = rng.choice(["fit", "engagement"])
        points = rng.choice([-10, -5, 2, 5, 10, 15, 20])
        return "score.adjust", {
            "points": points,
            "category": category,
            "reason": rng.choice(REASONS[category]),
        }
    if roll < 0.55:
        return rng.choice(["tag.add", "tag.add", "tag.remove"]), {"tag": rng.choice(TAGS)}
    if roll < 0.75:
        config: dict[str, Any] = {"amount": rng.choice([1, 2, 3, 7]), "unit": "days"}
        if rng.random() < 0.3:
            config.update(weekdays=[0, 1, 2, 3, 4], between=["09:00", "17:00"])
        return "wait", config
    if roll < 0.9:
        return "sales.notify", {
            "title": rng.choice(TITLES),
            "due_in": {"amount": rng.choice([4, 24]), "unit": "hours"},
            "priority": rng.choice(["normal", "high"]),
        }
    return "stage.change", {"stage": rng.choice(STAGES)}


def branch_config(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A node with two outputs."""
    if rng.random() < 0.8:
        return "condition", {"conditions": rng.choice(CONDITIONS)}
    return "wait.until", {
        "event": {"type": "email.activity", "config": {"activity": "opened"}},
        "within_days": rng.choice([3, 7, 14]),
    }


OUTPUTS = {"condition": ("yes", "no"), "wait.until": ("met", "timeout"), "exit": ()}


def node_configs(
    rng: random.Random, *, triggers: int, branches: int, steps: int, exits: int
) -> list[tuple[str, dict[str, Any]]]:
    """The nodes' types and configs in graph order: the triggers, then the steps
    (``branches`` of them with two outputs) shuffled, exits in the second half."""
    kinds = ["branch"] * branches + ["step"] * (steps - branches)
    rng.shuffle(kinds)
    for _ in range(exits):
        kinds.insert(rng.randrange(len(kinds) // 2, len(kinds) + 1), "exit")
    configs = [trigger_config(rng) for _ in range(triggers)]
    for kind in kinds:
        if kind == "branch":
            configs.append(branch_config(rng))
        elif kind == "step":
            configs.append(step_config(rng))
        else:
            configs.append(("exit", {}))
    return configs


def build_graph(*, nodes: int, edges: int, seed: int) -> dict[str, Any]:
    """A graph in the draft's JSON shape that ``graph_validate`` accepts: nodes in
    a topological order, a spanning forest from the triggers (each node gets one
    incoming edge from an open output above it), then merges from open outputs to
    later nodes until there are ``edges`` edges."""
    rng = random.Random(seed)
    triggers = max(1, round(nodes / 25))
    exits = max(1, nodes // 40)
    steps = nodes - triggers - exits
    if steps < 1:
        raise SystemExit(f"--nodes {nodes} is too few: at least {triggers + exits + 1}")
    if edges < nodes - triggers:
        raise SystemExit(
            f"--edges {edges} is too few: {nodes} nodes with {triggers} triggers need "
            f"at least {nodes - triggers} to reach every node"
        )
    # Outputs in all: triggers + 2 * branches + single-output steps; a tenth spare.
    branches = min(steps, max(nodes // 5, edges + edges // 10 - nodes + exits))
    configs = node_configs(rng, triggers=triggers, branches=branches, steps=steps, exits=exits)
    ids = [f"{node_type.replace('.', '-')}-{n + 1}" for n, (node_type, _) in enumerate(configs)]

    graph_edges: list[tuple[int, str, int]] = []
    open_outputs: list[tuple[int, str]] = [(n, "next") for n in range(triggers)]
    for n in range(triggers, nodes):
        if n - triggers < triggers:
            # The first steps go one under each trigger: every trigger leads somewhere.
            chosen = (n - triggers, "next")
        else:
            if not open_outputs:
                raise SystemExit("no open output left to attach a node to: try other --seed")
            chosen = rng.choice(open_outputs[-PARENT_WINDOW:])
        open_outputs.remove(chosen)
        graph_edges.append((chosen[0], chosen[1], n))
        node_type = configs[n][0]
        open_outputs.extend((n, handle) for handle in OUTPUTS.get(node_type, ("next",)))

    linked = {(source, target) for source, _, target in graph_edges}
    while len(graph_edges) < edges:
        usable = [(s, h) for s, h in open_outputs if s < nodes - 1]
        if not usable:
            raise SystemExit(
                f"only {len(graph_edges)} edges fit {nodes} nodes this way: ask for fewer --edges"
            )
        source, handle = rng.choice(usable)
        first = max(source + 1, triggers)
        targets = [
            t for t in range(first, min(nodes, first + MERGE_WINDOW)) if (source, t) not in linked
        ]
        targets = targets or [t for t in range(first, nodes) if (source, t) not in linked]
        open_outputs.remove((source, handle))
        if not targets:
            continue
        target = rng.choice(targets)
        graph_edges.append((source, handle, target))
        linked.add((source, target))

    positions = grid_positions(nodes, graph_edges)
    return {
        "nodes": [
            {"id": ids[n], "type": node_type, "config": config, "position": positions[n]}
            for n, (node_type, config) in enumerate(configs)
        ],
        "edges": [
            {
                "id": f"{ids[source]}-{handle}-{ids[target]}",
                "source": ids[source],
                "sourceHandle": handle,
                "target": ids[target],
            }
            for source, handle, target in graph_edges
        ],
    }


def grid_positions(nodes: int, edges: Sequence[tuple[int, str, int]]) -> list[dict[str, int]]:
    """Rows by longest path from a trigger, columns ordered by the mean column of
    each node's parents (fewer crossings), each row centred."""
    parents: dict[int, list[int]] = {n: [] for n in range(nodes)}
    for source, _, target in edges:
        parents[target].append(source)
    layer = [0] * nodes
    for n in range(nodes):  # nodes are in topological order
        if parents[n]:
            layer[n] = max(layer[p] for p in parents[n]) + 1
    rows: dict[int, list[int]] = {}
    for n in range(nodes):
        rows.setdefault(layer[n], []).append(n)
    column = [0.0] * nodes
    for depth in sorted(rows):
        row = rows[depth]
        row.sort(key=lambda n: statistics.fmean(column[p] for p in parents[n]) if parents[n] else n)
        for index, n in enumerate(row):
            column[n] = index - (len(row) - 1) / 2
    return [{"x": round(column[n] * COLUMN), "y": layer[n] * ROW} for n in range(nodes)]


def graph_shape(graph: dict[str, Any]) -> str:
    from flows.nodes import REGISTRY

    kinds = Counter(REGISTRY[node["type"]].kind for node in graph["nodes"])
    xs = [node["position"]["x"] for node in graph["nodes"]]
    ys = [node["position"]["y"] for node in graph["nodes"]]
    size = len(json.dumps(graph, separators=(",", ":")))
    return (
        f"{len(graph['nodes'])} nodes ("
        + ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        + f"), {len(graph['edges'])} edges, {max(ys) // ROW + 1} rows, "
        f"{(max(xs) - min(xs)) // COLUMN + 1} columns wide at most; "
        f"{size / 1024:.0f} KB of JSON"
    )


def setup(graph: dict[str, Any]) -> int:
    """Check the graph as publishing would, then (re)create the bench's user and
    flow; the flow's id."""
    from django.contrib.auth.models import Group, User
    from django.db import connections

    from core.roles import Role
    from flows.graph import GraphError, graph_validate
    from flows.lifecycle import flow_create
    from flows.models import Flow
    from flows.selectors import node_summaries

    try:
        graph_validate(graph)
    except GraphError as exc:
        raise SystemExit(
            "the generated graph does not validate: " + json.dumps(exc.problems)[:3000]
        ) from exc
    blank = [node_id for node_id, summary in node_summaries(graph).items() if not summary]
    if blank:
        raise SystemExit(f"nodes the canvas would show as not configured: {blank[:10]}")
    Flow.objects.filter(name__startswith=FLOW_PREFIX).delete()
    user, _ = User.objects.get_or_create(
        username=USERNAME, defaults={"email": f"{USERNAME}@example.com"}
    )
    user.set_password(PASSWORD)
    user.is_active = True
    user.save()
    user.groups.set([Group.objects.get_or_create(name=Role.MARKETER)[0]])
    flow = flow_create(
        name=f"{FLOW_PREFIX}{len(graph['nodes'])} nodes, {len(graph['edges'])} edges",
        graph=graph,
        created_by=user,
    )
    connections.close_all()
    return flow.pk


# --- in the page --------------------------------------------------------------------

# Installed before any of the page's scripts, in every document of the context.
PROBE = """
(expected) => {
  const state = {
    drawnInDom: null, drawn: null, target: null, clickAt: null, clickHandled: null,
    selected: null, settings: null, longTasks: [],
  };
  window.__lfBench = state;
  let resolveDrawn;
  state.drawnPromise = new Promise((resolve) => { resolveDrawn = resolve; });
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        state.longTasks.push([entry.startTime, entry.duration]);
      }
    }).observe({ type: "longtask", buffered: true });
  } catch (error) {}
  const target = () => {
    const canvas = document.querySelector(".lf-canvas .react-flow");
    const box = canvas.getBoundingClientRect();
    const cx = box.left + box.width / 2, cy = box.top + box.height / 2;
    let best = null;
    for (const node of document.querySelectorAll(".react-flow__node")) {
      const r = node.getBoundingClientRect();
      const x = r.left + r.width / 2, y = r.top + r.height / 2;
      const inside = x > box.left && x < box.right && y > box.top && y < box.bottom;
      const distance = Math.hypot(x - cx, y - cy);
      if (inside && (!best || distance < best.distance)) {
        best = { id: node.dataset.id, x, y, width: r.width, distance };
      }
    }
    const transform = document.querySelector(".react-flow__viewport").style.transform;
    const zoom = Number((/scale\\(([0-9.]+)\\)/.exec(transform) || [0, 0])[1]);
    return best && { ...best, zoom };
  };
  const check = () => {
    const now = performance.now();
    if (state.drawnInDom === null) {
      const nodes = document.querySelectorAll(".react-flow__node");
      if (nodes.length === expected && [...nodes].every((n) => n.style.visibility !== "hidden")) {
        state.drawnInDom = now;
        requestAnimationFrame(() => {
          state.drawn = performance.now();
          state.target = target();
          resolveDrawn(state.target);
        });
      }
    }
    if (state.clickAt === null) return;
    if (state.selected === null && document.querySelector(".lf-selected")) state.selected = now;
    if (state.settings === null && document.querySelector(".lf-panel-form form")) {
      state.settings = now;
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["class", "style"],
  });
  addEventListener("pointerdown", (event) => {
    if (state.clickAt === null) {
      state.clickAt = event.timeStamp;
      state.clickHandled = performance.now();
    }
  }, true);
}
"""

COLLECT = """
() => {
  const s = window.__lfBench;
  const nav = performance.getEntriesByType("navigation")[0];
  const before = (t) => s.longTasks.filter(([start]) => start < t);
  const busy = before(s.selected).reduce((sum, [, d]) => sum + d, 0);
  const longest = before(s.selected).reduce((max, [, d]) => Math.max(max, d), 0);
  return {
    html: nav.responseEnd, dcl: nav.domContentLoadedEventEnd, drawnInDom: s.drawnInDom,
    drawn: s.drawn, clickAt: s.clickAt, clickHandled: s.clickHandled, selected: s.selected,
    settings: s.settings, zoom: s.target.zoom, nodeWidth: s.target.width,
    longTaskMs: busy, longestTaskMs: longest,
    transferred: performance.getEntriesByType("resource")
      .filter((e) => e.initiatorType === "script" || e.initiatorType === "link")
      .reduce((sum, e) => sum + e.transferSize, 0),
    selectedId: (document.querySelector(".react-flow__node.selected") || {}).dataset?.id,
  };
}
"""

SAVE = """
async ({ revision }) => {
  const data = window.__lfBenchData;
  const started = performance.now();
  const body = JSON.stringify({ graph: data.graph, revision });
  const response = await fetch(data.urls.draft, {
    method: "PUT",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      "Content-Type": "application/json",
      "X-CSRFToken": data.csrfToken,
    },
    body,
  });
  const answer = await response.json();
  return { ms: performance.now() - started, status: response.status, revision: answer.revision };
}
"""


@dataclass
class Load:
    html: float
    dcl: float
    drawn: float
    click_gap: float
    interactive: float
    click_to_selected: float
    click_to_settings: float
    long_task_ms: float
    longest_task_ms: float
    zoom: float
    node_width: float
    transferred: int


@dataclass
class Results:
    cold: list[Load] = field(default_factory=list)
    warm: list[Load] = field(default_factory=list)
    browser_save_ms: list[float] = field(default_factory=list)
    server_save_ms: list[float] = field(default_factory=list)
    server_page_ms: list[float] = field(default_factory=list)
    html_bytes: int = 0


def load(page: Page, url: str, nodes: int) -> Load:
    """Open the builder, click the node nearest the canvas centre once all nodes
    are drawn, and read the page's timings."""
    page.goto(url, wait_until="commit")
    target = page.evaluate("() => window.__lfBench.drawnPromise")
    if not target:
        raise SystemExit("no node inside the canvas to click")
    page.mouse.click(target["x"], target["y"])
    page.wait_for_function(
        "() => window.__lfBench.selected !== null && window.__lfBench.settings !== null",
        timeout=TIMEOUT_MS,
    )
    t = page.evaluate(COLLECT)
    if t["selectedId"] != target["id"]:
        raise SystemExit(f"clicked node {target['id']} but {t['selectedId']} is selected")
    return Load(
        html=t["html"],
        dcl=t["dcl"],
        drawn=t["drawn"],
        click_gap=t["clickAt"] - t["drawn"],
        interactive=t["selected"],
        click_to_selected=t["selected"] - t["clickAt"],
        click_to_settings=t["settings"] - t["clickAt"],
        long_task_ms=t["longTaskMs"],
        longest_task_ms=t["longestTaskMs"],
        zoom=t["zoom"],
        node_width=t["nodeWidth"],
        transferred=t["transferred"],
    )


def warm_up_server(base: str, session: requests.Session, url: str) -> None:
    """Both gunicorn workers import their code and connect before the clock runs."""

    def fetch() -> None:
        for _ in range(3):
            requests.get(base + url, cookies=session.cookies, timeout=30).raise_for_status()

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(
    *, base: str, flow_id: int, nodes: int, runs: int, graph: dict[str, Any], headed: bool
) -> Results:
    url = f"/flows/{flow_id}/"
    draft_url = f"{base}/api/v1/flows/{flow_id}/draft/"
    results = Results()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=not headed
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, base_url=base)
            page = context.new_page()
            page.goto("/login/")
            page.get_by_label("Username").fill(USERNAME)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/")
            state = context.storage_state()
            session = requests.Session()
            for cookie in context.cookies():
                session.cookies.set(cookie["name"], cookie["value"])
            context.close()
            warm_up_server(base, session, url)

            def fresh_context() -> BrowserContext:
                context = browser.new_context(viewport=VIEWPORT, base_url=base, storage_state=state)
                context.set_default_timeout(TIMEOUT_MS)
                context.add_init_script(f"({PROBE})({nodes})")
                return context

            # One untimed load: the browser's own first-start costs are not the app's.
            context = fresh_context()
            load(context.new_page(), url, nodes)
            context.close()

            for number in range(1, runs + 1):
                context = fresh_context()
                page = context.new_page()
                cold = load(page, url, nodes)
                page.goto("about:blank")
                warm = load(page, url, nodes)
                context.close()
                results.cold.append(cold)
                results.warm.append(warm)
                print(
                    f"load run {number}: cold drawn {cold.drawn:.0f} ms, interactive "
                    f"{cold.interactive:.0f} ms; warm drawn {warm.drawn:.0f} ms, interactive "
                    f"{warm.interactive:.0f} ms",
                    flush=True,
                )

            # Saves, on a loaded page that is left alone.
            context = fresh_context()
            page = context.new_page()
            page.goto(url, wait_until="commit")
            page.evaluate("() => window.__lfBench.drawnPromise")
            revision = page.evaluate(
                """() => {
                  const source = document.getElementById("builder-data");
                  window.__lfBenchData = JSON.parse(source.textContent);
                  return window.__lfBenchData.revision;
                }"""
            )
            headers = {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-CSRFToken": session.cookies.get("csrftoken") or "",
            }
            for number in range(1, runs + 1):
                answer = page.evaluate(SAVE, {"revision": revision})
                if answer["status"] != 200:
                    raise SystemExit(f"the page's save answered {answer['status']}")
                results.browser_save_ms.append(answer["ms"])
                revision = answer["revision"]
                body = json.dumps({"graph": graph, "revision": revision}).encode()
                started = time.perf_counter()
                response = session.put(draft_url, data=body, headers=headers, timeout=30)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"PUT answered {response.status_code}: {response.text[:300]}")
                results.server_save_ms.append(elapsed)
                revision = response.json()["revision"]
                started = time.perf_counter()
                response = session.get(base + url, timeout=30)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                results.server_page_ms.append(elapsed)
                results.html_bytes = len(response.content)
                print(
                    f"save run {number}: page {answer['ms']:.0f} ms, server "
                    f"{results.server_save_ms[-1]:.0f} ms; GET page {elapsed:.0f} ms",
                    flush=True,
                )
            context.close()
        finally:
            browser.close()
    return results


# --- report -------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(results: Results, nodes: int) -> str:
    rows: list[tuple[str, list[float], str]] = []
    for name, loads in (("cold", results.cold), ("warm", results.warm)):
        rows += [
            (f"{name}: HTML received", [r.html for r in loads], ""),
            (f"{name}: bundle run (DOMContentLoaded)", [r.dcl for r in loads], ""),
            (f"{name}: all {nodes} nodes drawn", [r.drawn for r in loads], ""),
            (f"{name}: harness click after drawn", [r.click_gap for r in loads], ""),
            (
                f"{name}: **interactive** (clicked node selected)",
                [r.interactive for r in loads],
                f"< {GOAL_INTERACTIVE_MS:.0f}",
            ),
            (f"{name}: click → node selected", [r.click_to_selected for r in loads], ""),
            (f"{name}: click → settings form shown", [r.click_to_settings for r in loads], ""),
            (f"{name}: long tasks before interactive", [r.long_task_ms for r in loads], ""),
            (f"{name}: the longest of them", [r.longest_task_ms for r in loads], ""),
        ]
    rows += [
        (
            "**save** from the page (PUT draft, fetch)",
            results.browser_save_ms,
            f"< {GOAL_SAVE_MS:.0f}",
        ),
        ("save, server alone (PUT draft, requests)", results.server_save_ms, ""),
        ("page HTML, server alone (GET, requests)", results.server_page_ms, ""),
    ]
    lines = ["| measured | median ms | max ms | goal ms |", "|---|---:|---:|---:|"]
    for name, values, goal in rows:
        lines.append(f"| {name} | {median(values):,.0f} | {max(values):,.0f} | {goal} |")
    return "\n".join(lines)


def verdicts(results: Results, nodes: int, edges: int) -> str:
    def against(label: str, values: Sequence[float], goal: float) -> str:
        med, top = median(values), max(values)
        if top < goal:
            return (
                f"{label} {med:,.0f} ms median, {top:,.0f} ms max: under the {goal:,.0f} ms goal."
            )
        if med < goal:
            return (
                f"{label} {med:,.0f} ms median, under the {goal:,.0f} ms goal, "
                f"but {top:,.0f} ms at worst."
            )
        return f"{label} {med:,.0f} ms median, {top:,.0f} ms max: over the {goal:,.0f} ms goal."

    cold = [r.interactive for r in results.cold]
    warm = [r.interactive for r in results.warm]
    return " ".join(
        [
            against(
                f"A {nodes}-node, {edges}-edge flow is interactive on a first visit in",
                cold,
                GOAL_INTERACTIVE_MS,
            ),
            against("With the bundle cached:", warm, GOAL_INTERACTIVE_MS),
            against("Saving it from the page:", results.browser_save_ms, GOAL_SAVE_MS),
            f"The server's part of a save is {median(results.server_save_ms):,.0f} ms, "
            f"and of the page {median(results.server_page_ms):,.0f} ms "
            f"({results.html_bytes / 1024:,.0f} KB of HTML).",
        ]
    )


# --- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time for a large flow to load and become interactive in the builder "
            "(headless Chromium), and to save."
        )
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="bench database; created if missing, migrated, its bench flow replaced "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="scratch Redis database for cache and broker, flushed; never 0 (default: %(default)s)",
    )
    parser.add_argument("--nodes", type=int, default=200, help="nodes (default: %(default)s)")
    parser.add_argument("--edges", type=int, default=250, help="edges (default: %(default)s)")
    parser.add_argument(
        "--runs", type=int, default=5, help="loads and saves timed (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="graph seed (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=0, help="gunicorn port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument("--headed", action="store_true", help="show the browser window")
    parser.add_argument(
        "--record", action="store_true", help="append the result to bench/RESULTS.md"
    )
    args = parser.parse_args(argv)
    for name in ("nodes", "edges", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def preflight() -> None:
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    if not BUNDLE.exists():
        raise SystemExit(f"{BUNDLE.relative_to(ROOT)} is missing: run `make assets`")
    built = BUNDLE.stat().st_mtime
    newer = [p for p in FRONTEND.rglob("*") if p.is_file() and p.stat().st_mtime > built]
    if newer:
        print(
            f"warning: {len(newer)} file(s) under frontend/src are newer than the bundle "
            f"(e.g. {newer[0].relative_to(ROOT)}); `make assets` to measure them",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    preflight()
    began = time.perf_counter()
    loads = {"at the start": os.getloadavg()[0]}
    conninfo = pg_conninfo.make_conninfo(args.database_url)
    database_ensure(conninfo)
    broker = broker_connect(args.redis_url)
    broker.flushdb()
    graph = build_graph(nodes=args.nodes, edges=args.edges, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as data_dir:
        env = app_env(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=args.database_url,
            REDIS_URL=args.redis_url,
            LEADFLOW_DATA_DIR=data_dir,
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        print("migrating…", flush=True)
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        django_setup(env)
        flow_id = setup(graph)
        shape = graph_shape(graph)
        print(f"flow {flow_id}: {shape}", flush=True)
        port = args.port or free_port()
        server = Gunicorn(env=env, port=port, threads=2)
        try:
            server.wait_healthy()
            results = measure(
                base=f"http://{HOST}:{port}",
                flow_id=flow_id,
                nodes=args.nodes,
                runs=args.runs,
                graph=graph,
                headed=args.headed,
            )
        finally:
            server.stop()
            broker.flushdb()
    loads["at the end"] = os.getloadavg()[0]
    wall = time.perf_counter() - began

    info = machine()
    pg = postgres_version(conninfo)
    zoom = median([r.zoom for r in results.cold + results.warm])
    width = median([r.node_width for r in results.cold + results.warm])
    transferred = median([r.transferred for r in results.cold]) / 1024
    fitted = (
        f"fitted at zoom {zoom:.2f} (a node {width:.0f} px wide); a first visit "
        f"transfers {transferred:,.0f} KB of scripts and styles"
    )
    body = f"{table(results, args.nodes)}\n\n{verdicts(results, args.nodes, args.edges)}\n"
    print(f"\n{fitted}\n\n{body}")
    print(f"whole run {wall:.0f} s")
    if args.record:
        now = dt.datetime.now().astimezone()
        record(
            f"## builder: {now:%Y-%m-%d %H:%M %Z}\n\n"
            "`bench/builder.py`: a generated flow that passes `graph_validate` opened in "
            "the builder by headless Chromium, cold (fresh browser context) and warm "
            "(bundle cached); in-page times from navigation start: HTML received, all "
            "nodes drawn (first frame after every `.react-flow__node` is in the document "
            "and measured), interactive (a real mouse click on the node nearest the "
            "canvas centre, sent once the nodes are drawn, has selected it: "
            "`.lf-selected`; the harness's delay before the click is included and shown). "
            "Saves: the canvas's `PUT …/draft/` with the whole graph, timed in the page "
            "with `fetch` (JSON encoding to parsed answer) and by `requests` alone.\n\n"
            f"- machine: {info['arch']}, {info['cores']} cores, {info['ram']} RAM; "
            f"Python {info['python']}, PostgreSQL {pg}, Chromium "
            f"{chromium_version()}; browser, gunicorn (2 workers of 2 threads, "
            "`DEBUG` off, `collectstatic` run, static files served by WhiteNoise) "
            "and PostgreSQL on the same host; load average "
            + ", ".join(f"{v:.2f} {k}" for k, v in loads.items())
            + "\n"
            f"- parameters: --nodes {args.nodes} --edges {args.edges} --runs {args.runs} "
            f"--seed {args.seed}; window 1280x800\n"
            f"- graph: {shape}; {fitted}\n"
            f"- whole run {wall:.0f} s\n\n"
            f"{body}",
        )
        print(f"recorded in {RESULTS.relative_to(ROOT)}")
    return 0


def chromium_version() -> str:
    try:
        out = subprocess.run(
            [str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return next((word for word in out.split() if word[:1].isdigit()), "?")


if __name__ == "__main__":
    sys.exit(main())

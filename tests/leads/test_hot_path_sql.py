"""The worker's hot path, pinned statement by statement.

One ordinary ``track`` event of a known lead, processed as the ``events_process``
Celery task processes it, in a typical account: two dynamic segments and one
active scoring flow whose trigger matches the event. The test fails when a round
trip is added or removed, or when a statement's text changes.

To change the pin on purpose, run

    LEADFLOW_PIN_UPDATE=1 .venv/bin/pytest tests/leads/test_hot_path_sql.py -q -s

which prints the statements in the form of ``EXPECTED`` below; paste them over
it, and let the review see the difference (and why it is worth it).
"""

from __future__ import annotations

import json
import os
import re
import textwrap

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.scope import processing_batch
from leads.services import events as event_services
from leads.services.events import events_process
from segments.check import segment_index, segments_heard
from segments.services import segment_create
from tests.factories import EventFactory, LeadFactory
from tests.flows.helpers import graph, published

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="pins PostgreSQL's statements: SQLite's differ (no prepared hot path)",
    ),
]

# The statements as they are sent, normalized by ``normalize``, in order: the
# message's events (with what tells whether their leads are known, for groups of
# events; one event is no group); the event's transaction (a savepoint here, as
# the test runs in one; BEGIN in the worker); the event locked; the lead locked
# by user id, its activity moved and the event linked, with the flows' lock
# probe; the dynamic segments' digests, to know that the worker's index of which
# depends on what is still theirs (once per batch; an earlier batch built it, and
# nothing depends on a track event, so no segment is checked); the flows'
# trigger subscriptions with digests of their graphs, likewise; the re-entry
# check; the categories; the scoring
# settings (grade thresholds, the total's cap); the enrollment with its trigger
# step and the score step's row, the ledger row keyed by that row with what
# counts of it under the caps, the lead's totals and the derived
# ``score.changed`` event, all in one statement; the lead's grades, as the 10
# points move its engagement from 4 to 3, and the derived ``grade.changed``
# event; the step and the enrollment done; the hook
# subscriptions; the events marked processed, which also sets how the
# transaction commits (core.commit); COMMIT; and the drain's look for other
# waiting events (with the same hints).
EXPECTED: list[str] = [
    (
        "SELECT leads_event.id AS id, leads_event.lead_id AS lead_id, leads_event.user_id AS "
        "user_id, leads_event.email AS email, leads_event.anonymous_id AS anonymous_id, "
        "leads_event.type AS type FROM leads_event WHERE (leads_event.id IN (?) AND "
        "leads_event.processed_at IS NULL) ORDER BY leads_event.occurred_at ASC, ? ASC"
    ),
    "SAVEPOINT sp",
    (
        "SELECT id, lead_id, type, name, properties, context, user_id, anonymous_id, email, "
        "occurred_at, received_at, source, idempotency_key, processed_at, error, attempts, "
        "retry_at, resends, resent_at, depth FROM leads_event WHERE id = ? AND processed_at "
        "IS NULL FOR UPDATE"
    ),
    (
        "WITH lead AS (UPDATE leads_lead SET last_activity_at = greatest(last_activity_at, ?)"
        " WHERE external_id = ? RETURNING id, email, external_id, first_name, last_name, "
        "phone, job_title, company_name, company_size, industry, country, city, stage, "
        "owner_id, unsubscribed, consent_state, consent_changed_at, email_bounced_at, "
        "language, time_zone, score, grade, fit_grade, engagement_grade, source, "
        "source_detail, mql_at, sql_at, opportunity_at, customer_at, lost_at, "
        "disqualified_at, qualified_score, custom_fields, raw_traits, created_at, updated_at,"
        " last_activity_at), linked AS (UPDATE leads_event e SET lead_id = lead.id FROM lead "
        "WHERE e.id = ? AND e.lead_id IS DISTINCT FROM lead.id) SELECT *, EXISTS (SELECT FROM"
        " flows_steprun s JOIN flows_enrollment e ON e.id = s.enrollment_id JOIN flows_flow f"
        " ON f.id = e.flow_id WHERE e.lead_id = lead.id AND e.status IN (?…) AND f.status = ?"
        " AND s.node_type = ? AND s.status = ?) FROM lead"
    ),
    (
        "SELECT id, name, md5(conditions::text), conditions::text LIKE ? FROM leads_segment "
        "WHERE kind = ? ORDER BY id"
    ),
    (
        "SELECT s.id, s.flow_id, s.version_id, s.node_id, s.event_type, s.match_key, "
        "f.reentry, f.reentry_days, f.name, md5(v.graph::text) FROM flows_triggersubscription"
        " s JOIN flows_flow f ON f.id = s.flow_id JOIN flows_flowversion v ON v.id = "
        "s.version_id WHERE f.status = ? ORDER BY s.id"
    ),
    (
        "SELECT flows_enrollment.created_at AS created_at FROM flows_enrollment WHERE "
        "(flows_enrollment.flow_id = ? AND flows_enrollment.lead_id = ?) ORDER BY ? DESC, "
        "flows_enrollment.id DESC LIMIT ?"
    ),
    (
        "SELECT scoring_scorecategory.id, scoring_scorecategory.key, "
        "scoring_scorecategory.label, scoring_scorecategory.builtin, "
        "scoring_scorecategory.cap, scoring_scorecategory.decay_mode, "
        "scoring_scorecategory.decay_days, scoring_scorecategory.decay_percent FROM "
        "scoring_scorecategory ORDER BY scoring_scorecategory.id ASC"
    ),
    (
        "SELECT scoring_scoringsettings.id, scoring_scoringsettings.warm_threshold, "
        "scoring_scoringsettings.hot_threshold, scoring_scoringsettings.mql_threshold, "
        "scoring_scoringsettings.mql_moves_stage, scoring_scoringsettings.sales_can_adjust, "
        "scoring_scoringsettings.total_cap, scoring_scoringsettings.hot_rule, "
        "scoring_scoringsettings.hot_min_fit, scoring_scoringsettings.hot_min_engagement, "
        "scoring_scoringsettings.fit_a, scoring_scoringsettings.fit_b, "
        "scoring_scoringsettings.fit_c, scoring_scoringsettings.engagement_1, "
        "scoring_scoringsettings.engagement_2, scoring_scoringsettings.engagement_3, "
        "scoring_scoringsettings.preset FROM scoring_scoringsettings ORDER BY "
        "scoring_scoringsettings.id ASC LIMIT ?"
    ),
    (
        "WITH enrollment AS (INSERT INTO flows_enrollment (flow_id, version_id, lead_id, "
        "trigger_event_id, trigger_node, status, created_at) VALUES (?…) RETURNING id), "
        "trigger AS (INSERT INTO flows_steprun (enrollment_id, node_id, node_type, visit, "
        "status, attempts, output, error, started_at, finished_at) SELECT id, ?, ?, ?, ?, ?, "
        "?, ?, ?, ? FROM enrollment RETURNING id, enrollment_id), opened AS (INSERT INTO "
        "flows_steprun (enrollment_id, node_id, node_type, visit, status, attempts, output, "
        "error, started_at, finished_at) SELECT enrollment_id, ?, ?, ?, ?, ?, ?, ?, ?, NULL "
        "FROM trigger RETURNING id, enrollment_id), before AS (SELECT l.score AS total, "
        "COALESCE((SELECT s.score FROM scoring_leadscore s WHERE s.lead_id = l.id AND "
        "s.category_id = ?), ?) AS points, COALESCE((SELECT s.score FROM scoring_leadscore s "
        "WHERE s.lead_id = l.id AND s.category_id = ?), ?) AS fit, COALESCE((SELECT s.score "
        "FROM scoring_leadscore s WHERE s.lead_id = l.id AND s.category_id = ?), ?) AS "
        "engagement FROM leads_lead l WHERE l.id = ?), counted AS (SELECT fit, engagement, "
        "CASE WHEN ? <= ? THEN ? ELSE GREATEST(?, LEAST(?, COALESCE(CAST(? AS integer) - "
        "points, ?), COALESCE(CAST(? AS integer) - total, ?))) END AS delta FROM before), "
        "change AS (INSERT INTO scoring_scorechange (lead_id, delta, capped, category_id, "
        "reason, source, source_key, created_by_id, created_at, occurred_at) SELECT ?, delta,"
        " ? - delta, ?, ?, ?, ? || opened.id, ?, ?, ? FROM counted, opened, trigger ON "
        "CONFLICT (source_key) DO NOTHING RETURNING id, delta), lead AS (UPDATE leads_lead l "
        "SET score = l.score + change.delta FROM change WHERE l.id = ? RETURNING l.score, "
        "l.grade, l.fit_grade, l.engagement_grade, l.stage), category AS (INSERT INTO "
        "scoring_leadscore AS s (lead_id, category_id, score) SELECT ?, ?, delta FROM change "
        "ON CONFLICT (lead_id, category_id) DO UPDATE SET score = s.score + excluded.score "
        "RETURNING score), derived_key AS (INSERT INTO leads_eventkey (source, "
        "idempotency_key, received_at) SELECT ?, ? || change.id, ? FROM change, lead, "
        "category WHERE change.delta <> ? ON CONFLICT (source, idempotency_key) DO NOTHING "
        "RETURNING idempotency_key), derived AS (INSERT INTO leads_event (type, name, "
        "properties, context, user_id, anonymous_id, email, occurred_at, received_at, source,"
        " idempotency_key, depth, attempts, resends, error, lead_id) SELECT ?::varchar, "
        "?::varchar, jsonb_build_object(?, change.delta, ?, lead.score - change.delta, ?, "
        "lead.score, ?, ?::text, ?, category.score - change.delta, ?, category.score, ?, "
        "?::text) || CASE WHEN change.delta <> ? THEN jsonb_build_object(?, ? - change.delta)"
        " ELSE ?::jsonb END, ?::jsonb, ?, ?, ?, ?::timestamptz, ?::timestamptz, ?, "
        "derived_key.idempotency_key, ?::int2, ?, ?, ?, ?::int8 FROM derived_key, change, "
        "lead, category RETURNING id) SELECT change.id, change.delta, lead.score, lead.grade,"
        " lead.fit_grade, lead.engagement_grade, lead.stage, category.score, counted.fit, "
        "counted.engagement, (SELECT id FROM derived), opened.enrollment_id, trigger.id, "
        "opened.id FROM change, lead, category, counted, opened, trigger"
    ),
    "UPDATE leads_lead SET grade = ?, fit_grade = ?, engagement_grade = ? WHERE id = ?",
    (
        "WITH batch AS (SELECT * FROM unnest(?…) WITH ORDINALITY AS r(type, name, properties,"
        " context, user_id, anonymous_id, email, occurred_at, received_at, source, "
        "idempotency_key, depth, attempts, resends, error, lead_id, n)), distinct_rows AS "
        "(SELECT DISTINCT ON (source, idempotency_key) * FROM batch ORDER BY source, "
        "idempotency_key, n), claimed AS (INSERT INTO leads_eventkey (source, "
        "idempotency_key, received_at) SELECT source, idempotency_key, received_at FROM "
        "distinct_rows ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING source, "
        "idempotency_key) INSERT INTO leads_event (type, name, properties, context, user_id, "
        "anonymous_id, email, occurred_at, received_at, source, idempotency_key, depth, "
        "attempts, resends, error, lead_id) SELECT type, name, properties, context, user_id, "
        "anonymous_id, email, occurred_at, received_at, source, idempotency_key, depth, "
        "attempts, resends, error, lead_id FROM distinct_rows JOIN claimed USING (source, "
        "idempotency_key) ORDER BY n RETURNING id"
    ),
    (
        "WITH written AS (UPDATE flows_steprun SET status = ?, output = ?, finished_at = ? "
        "WHERE id = ?) UPDATE flows_enrollment SET status = ?, finished_at = ? WHERE id = ?"
    ),
    (
        "SELECT flows_hooksubscription.id AS id, flows_hooksubscription.target_url AS "
        "target_url, flows_hooksubscription.events AS events FROM flows_hooksubscription"
    ),
    (
        "UPDATE leads_event SET processed_at = ? FROM (SELECT set_config(?, coalesce(?, "
        "current_setting(?)), true)) commit_mode WHERE id = ANY(?)"
    ),
    "RELEASE SAVEPOINT sp",
    (
        "SELECT leads_event.id AS id, leads_event.lead_id AS lead_id, leads_event.user_id AS "
        "user_id, leads_event.email AS email, leads_event.anonymous_id AS anonymous_id, "
        "leads_event.type AS type FROM leads_event WHERE (leads_event.attempts < ? AND "
        "leads_event.processed_at IS NULL AND (leads_event.retry_at IS NULL OR "
        "leads_event.retry_at <= ?::timestamptz)) ORDER BY leads_event.received_at ASC, ? ASC"
        " LIMIT ?"
    ),
]


def normalize(sql: str) -> str:
    """The statement without what changes from run to run: quoted identifiers
    unquoted, savepoint names, string literals, numbers, parameter placeholders
    and the length of ``IN (…)`` lists."""
    sql = re.sub(r'"(s\d+_x\d+)"', "sp", sql)
    sql = re.sub(r"\b(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT) s\d+_x\d+", r"\1 sp", sql)
    sql = sql.replace('"', "")
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"%\((\w+)\)s|%s|%b|\$\d+", "?", sql)
    sql = re.sub(r"(?<![\w.])-?\d+(?:\.\d+)?\b", "?", sql)
    sql = re.sub(r"\((?:\?(?:::[\w\[\]]+)?, )+\?(?:::[\w\[\]]+)?\)", "(?…)", sql)
    return re.sub(r"\s+", " ", sql).strip()


def _as_python(statements: list[str]) -> str:
    """``statements`` as the source of ``EXPECTED``, long ones wrapped."""
    lines = ["EXPECTED: list[str] = ["]
    for statement in statements:
        chunks = textwrap.wrap(statement, 84, drop_whitespace=False, break_on_hyphens=False)
        if len(chunks) == 1:
            lines.append(f"    {json.dumps(chunks[0], ensure_ascii=False)},")
            continue
        lines.append("    (")
        lines += [f"        {json.dumps(chunk, ensure_ascii=False)}" for chunk in chunks]
        lines.append("    ),")
    lines.append("]")
    return "\n".join(lines)


def test_one_track_event_of_a_known_lead(django_capture_on_commit_callbacks, monkeypatch):
    # Given a typical account: a known lead, two segments (the lead is in one)
    # and a published scoring flow,
    LeadFactory.create(external_id="u-1", job_title="CEO")
    with django_capture_on_commit_callbacks(execute=True):
        segment_create(
            name="CEOs",
            conditions={"all": [{"field": "job_title", "op": "contains", "value": "CEO"}]},
        )
        segment_create(
            name="Pricing visitors",
            conditions={
                "all": [
                    {
                        "activity": "page",
                        "where": {"url": {"op": "contains", "value": "/pricing"}},
                        "within_days": 30,
                    }
                ]
            },
        )
    published(
        "Trial scoring",
        graph(
            ("t", "app.event", {"event": "Signed up for trial"}),
            ("s", "score.adjust", {"points": 10, "category": "engagement", "reason": "Trial"}),
        ),
    )
    # and a track event of a known user, as /v1/track records it,
    event = EventFactory.create(
        lead=None, user_id="u-1", type="track", name="Signed up for trial", source="api"
    )

    # The insert of derived events speaks to psycopg directly, past Django's log:
    # logged here, so that it is pinned with the rest.
    insert = event_services._pg_insert

    def logged_insert(events):
        ids = insert(events)
        connection.queries_log.append({"sql": event_services._PG_INSERT, "time": "0"})
        return ids

    monkeypatch.setattr(event_services, "_pg_insert", logged_insert)

    # when a worker that processed a batch before processes it, as the
    # events_process task does,
    with processing_batch():
        segment_index()
        segments_heard()
    with CaptureQueriesContext(connection) as captured:
        events_process(event_ids=[event.pk], drain=True)

    # then it sends exactly these statements.
    statements = [normalize(query["sql"]) for query in captured.captured_queries]
    if os.environ.get("LEADFLOW_PIN_UPDATE"):
        print("\n" + _as_python(statements))
    assert statements == EXPECTED
    assert len(captured) == len(EXPECTED)

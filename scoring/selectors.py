"""Reads of the score ledger: why a lead has its score. The scoring API and the
lead profile both answer that question with ``lead_score_breakdown``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection
from django.utils.translation import gettext, ngettext

from leads.models import Lead
from scoring.models import LeadScore, ScoreCategory, ScoreChange, ScoreSource, ScoringSettings


@dataclass(frozen=True)
class StepOrigins:
    """How a ledger row written by a flow step (``step:<step run id>``) is traced
    to the flow and node that gave its points. Flows sit above scoring, so the
    flows app tells it from its ``AppConfig.ready`` (``step_origins_register``).

    ``joins`` is SQL joined to the ledger, with ``{step_id}`` standing for the
    step run id of the row (NULL for rows not written by a step); ``columns``
    are the SQL of the flow id, node id and node type it makes available."""

    joins: str
    columns: tuple[str, str, str]
    flow_names: Callable[[Iterable[int]], dict[int, str]]
    node_label: Callable[[str], str]


_origins: list[StepOrigins] = []


def step_origins_register(origins: StepOrigins) -> None:
    """Have breakdowns name the flow and node behind flow steps' points."""
    if _origins:
        raise ValueError("Step origins are registered already.")
    _origins.append(origins)


def change_reason(*, reason: str, source: str) -> str:
    """The reason of a ledger row as the reader's language says it: decay and
    expiry rows are written by the system in English ("no activity for 30 days",
    "expired after 90 days"); the rest are as their author wrote them."""
    found = re.search(r"\d+", reason)
    if source not in (ScoreSource.DECAY, ScoreSource.EXPIRY) or found is None:
        return reason
    days = int(found.group())
    if source == ScoreSource.DECAY:
        return ngettext("no activity for %(days)s day", "no activity for %(days)s days", days) % {
            "days": days
        }
    return ngettext("expired after %(days)s day", "expired after %(days)s days", days) % {
        "days": days
    }


def change_summary(
    *,
    points: int,
    capped: int,
    category: str,
    reason: str,
    source: str,
    cap: int | None,
) -> str:
    """A ledger row (or rows of one reason) as what it is: "+10 engagement,
    capped at 100" (what was asked, when a cap kept some out), "-6 engagement: no
    activity for 30 days", "+5 fit: Visited pricing"."""
    values = {"points": points + capped, "category": category, "cap": cap}
    if capped and cap is not None:
        return gettext("%(points)+d %(category)s, capped at %(cap)s") % values
    if capped:
        return gettext("%(points)+d %(category)s, capped") % values
    values["reason"] = change_reason(reason=reason, source=source)
    return gettext("%(points)+d %(category)s: %(reason)s") % values


@dataclass(frozen=True)
class ScoreReason:
    """Points of one reason, summed over its changes, and who or what gave them:
    the flow and node (flow steps) or the user (changes by hand)."""

    category: str
    category_label: str
    reason: str
    source: str
    points: int
    changes: int
    user: User | None
    # None (and no name) when the flow that gave the points was deleted.
    flow_id: int | None
    flow_name: str
    node_id: str
    node_type: str
    node_label: str
    # Points of these changes a cap kept out, and the cap (the category's, or
    # else the total's).
    capped: int = 0
    cap: int | None = None

    @property
    def label(self) -> str:
        """The reason in the reader's language."""
        return change_reason(reason=self.reason, source=self.source)

    @property
    def summary(self) -> str:
        return change_summary(
            points=self.points,
            capped=self.capped,
            category=self.category_label,
            reason=self.reason,
            source=self.source,
            cap=self.cap,
        )


@dataclass(frozen=True)
class ScoreBreakdown:
    score: int
    grade: str
    # (key, label, points) of every category, in the categories' order.
    categories: list[tuple[str, str, int]]
    reasons: list[ScoreReason]
    # How many reasons there are in all (more than ``reasons`` when a limit cut
    # the list).
    reasons_total: int = 0


# Ledger rows from flow steps are keyed ``step:<step run id>``.
_STEP_ID = (
    f"CASE WHEN sc.source = '{ScoreSource.FLOW.value}' AND sc.source_key LIKE 'step:%%' "
    "THEN CAST(SUBSTR(sc.source_key, 6) AS bigint) END"
)


def _breakdown_sql(origins: StepOrigins | None, *, limited: bool = False) -> str:
    """The ledger of one lead grouped by category, reason, source, user, and the
    flow and node of the step that gave the points. The step is joined once, not
    looked up per column: three correlated subqueries per row took half a second
    for a lead with 10,000 changes, the join takes milliseconds. Names are model
    constants and the registered origins' SQL; the lead is a bound parameter (and,
    when ``limited``, the number of rows: the count of all groups comes with each)."""

    flow, node, node_type = origins.columns if origins else ("NULL", "NULL", "NULL")
    joins = origins.joins.format(step_id=_STEP_ID) if origins else ""
    group = f"c.key, c.label, sc.reason, sc.source, sc.created_by_id, {flow}, {node}, {node_type}"
    return (
        f"SELECT {group}, SUM(sc.delta) AS points, COUNT(*) AS changes, "  # noqa: S608
        "SUM(sc.capped) AS capped, MAX(COALESCE(c.cap, t.total_cap)) AS cap, "
        "COUNT(*) OVER () AS reasons "
        f"FROM {ScoreChange._meta.db_table} sc "
        f"JOIN {ScoreCategory._meta.db_table} c ON c.id = sc.category_id "
        f"LEFT JOIN (SELECT total_cap FROM {ScoringSettings._meta.db_table} "
        "ORDER BY id LIMIT 1) t ON 1 = 1 "
        f"{joins} "
        "WHERE sc.lead_id = %s "
        f"GROUP BY {group} "
        # Ties in points in a stable order: by reason, then category.
        "ORDER BY points DESC, sc.reason, c.key" + (" LIMIT %s" if limited else "")
    )


def lead_score_breakdown(*, lead: Lead, limit: int | None = None) -> ScoreBreakdown:
    """A lead's score by category and where its points came from: the ledger
    grouped by reason, with the flow and node (flow steps) or the user (changes
    by hand) that gave them; the ``limit`` biggest reasons if given (with how
    many there are in all). Five queries however long the ledger."""

    origins = _origins[0] if _origins else None
    scores = dict(LeadScore.objects.filter(lead=lead).values_list("category_id", "score"))
    categories = [(c.key, c.label, scores.get(c.pk, 0)) for c in ScoreCategory.objects.all()]
    with connection.cursor() as cursor:
        if limit is None:
            cursor.execute(_breakdown_sql(origins), [lead.pk])
        else:
            cursor.execute(_breakdown_sql(origins, limited=True), [lead.pk, limit])
        rows = cursor.fetchall()
    flow_ids = {row[5] for row in rows if row[5] is not None}
    user_ids = {row[4] for row in rows if row[4] is not None}
    flows = origins.flow_names(flow_ids) if origins and flow_ids else {}
    users = User.objects.in_bulk(user_ids) if user_ids else {}
    reasons = []
    for row in rows:
        key, label, reason, source, user_id, flow_id, node_id, node_type = row[:8]
        points, changes, capped, cap = row[8:12]
        known = flow_id in flows
        reasons.append(
            ScoreReason(
                category=key,
                category_label=label,
                reason=reason,
                source=source,
                points=points,
                changes=changes,
                user=users.get(user_id),
                flow_id=flow_id if known else None,
                flow_name=flows[flow_id] if known else "",
                node_id=node_id or "",
                node_type=node_type or "",
                node_label=origins.node_label(node_type) if origins and node_type else "",
                capped=capped or 0,
                cap=cap if capped else None,
            )
        )
    return ScoreBreakdown(
        score=lead.score,
        grade=lead.grade,
        categories=categories,
        reasons=reasons,
        reasons_total=rows[0][12] if rows else 0,
    )


def axis_caps() -> dict[str, int | None]:
    """The caps of the fit and engagement categories, by key (what bounds fit A
    and engagement 1: ``scoring.rules.settings_problems``)."""
    return dict(
        ScoreCategory.objects.filter(key__in=("fit", "engagement")).values_list("key", "cap")
    )

"""Data-suggested points: a logistic regression of conversion (the lead became an
opportunity or a customer) on who a lead is (job title words, company size,
industry, country, source) and what it did before converting (emails, page
views of its most visited paths, app events, forms).

How the numbers are made:

- **sample**: every converted lead (up to ``MAX_POSITIVES``) and a random share
  of the others (``TABLESAMPLE BERNOULLI`` with a fixed seed, up to
  ``MAX_NEGATIVES``; on SQLite a fixed hash of the id instead). Sampling the
  two classes apart moves only the model's intercept, not its weights; the
  evidence's counts and rates are weighted back to the whole table (and marked
  as estimates when sampled).
- **activity** counts only events before the lead converted, capped at
  ``COUNT_CAP`` per lead, so what customers do after buying does not teach the
  model.
- **points**: the weight in log-odds scaled so that ``POINTS_TO_DOUBLE`` points
  double the odds of converting, rounded, and kept within ``±MAX_POINTS``;
  an attribute's points are given once, an activity's per occurrence.
- **deterministic**: the sample's seed and the solver's ``random_state`` are fixed.
- below ``MIN_POSITIVES`` conversions it suggests nothing and says how many more
  it needs.

Each suggestion carries the flow trigger (and condition) that would give its
points, as plain data; the flows app turns accepted ones into a draft flow.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection
from django.utils.translation import gettext, gettext_lazy, ngettext
from sklearn.linear_model import LogisticRegression

from leads.models import Event, Lead, LeadSource
from scoring.rules import ENGAGEMENT, FIT

MIN_POSITIVES = 30
MAX_POSITIVES = 5000
MAX_NEGATIVES = 15000
MIN_LEADS = 5  # leads with a feature before it is a column of the model
COUNT_CAP = 10
POINTS_TO_DOUBLE = 10
MAX_POINTS = 50
# Below these a suggestion is shown as uncertain (not ticked): too little evidence.
SOLID_LEADS = 20
SOLID_CONVERSIONS = 3
TOP_VALUES = 8  # industries, countries, paths and app events considered
SEED = 13

ATTRIBUTE = "attribute"
ACTIVITY = "activity"

# Job title words by seniority (matched case-insensitively, as the flow's condition does).
TITLE_GROUPS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "executive": (
        gettext_lazy("Job title: executive or founder"),
        ("chief", "ceo", "cto", "cfo", "cmo", "coo", "founder", "president"),
    ),
    "vp": (gettext_lazy("Job title: VP or director"), ("vp", "vice president", "director")),
    "head": (gettext_lazy("Job title: head of"), ("head of",)),
    "manager": (gettext_lazy("Job title: manager"), ("manager",)),
    "engineer": (gettext_lazy("Job title: engineer or developer"), ("engineer", "developer")),
    "freelance": (gettext_lazy("Job title: freelancer"), ("freelance",)),
    "student": (gettext_lazy("Job title: student or intern"), ("student", "internship", "trainee")),
}
SIZE_BANDS: list[tuple[int, int | None]] = [(1, 9), (10, 49), (50, 249), (250, 999), (1000, None)]
EMAIL_ACTIVITIES = ("opened", "clicked", "replied", "unsubscribed", "bounced")


@dataclass(frozen=True)
class Feature:
    key: str
    kind: str  # ATTRIBUTE (once per lead) or ACTIVITY (per occurrence)
    label: str
    category: str
    # The flow trigger that gives the points: {"type": ..., "config": {...}},
    # and for attributes the condition a new lead is checked against; None when
    # no flow can express it (the source).
    trigger: dict[str, Any] | None
    condition: dict[str, Any] | None = None


@dataclass(frozen=True)
class Suggestion:
    feature: Feature
    points: int
    weight: float
    # Leads with it (for an activity: did it at least once), of them converted,
    # and their conversion rate; estimates of the whole table when sampled.
    leads: int
    conversions: int
    # Why the evidence is too thin to trust (``suggestion_doubt``); "" when solid.
    doubt: str = ""

    @property
    def rate(self) -> float | None:
        return self.conversions / self.leads if self.leads else None

    @property
    def uncertain(self) -> bool:
        return bool(self.doubt)


def suggestion_doubt(*, points: int, leads: int, conversions: int, baseline: float | None) -> str:
    """Why a suggestion is uncertain, "" when it is solid: fewer than
    ``SOLID_LEADS`` leads with the feature, points up from fewer than
    ``SOLID_CONVERSIONS`` conversions (points down for a feature whose leads
    hardly convert are what the evidence says), or points whose sign disagrees
    with its conversion rate against the baseline (points up for a feature whose
    leads convert less than all leads, or down for one whose leads convert
    more)."""
    if leads < SOLID_LEADS:
        return ngettext("Only %(count)s lead has it.", "Only %(count)s leads have it.", leads) % {
            "count": leads
        }
    if points > 0 and conversions < SOLID_CONVERSIONS:
        return ngettext(
            "Only %(count)s of its leads converted.",
            "Only %(count)s of its leads converted.",
            conversions,
        ) % {"count": conversions}
    rate = conversions / leads
    if baseline is not None and (
        (points > 0 and rate < baseline) or (points < 0 and rate > baseline)
    ):
        return gettext(
            "The points disagree with its rate: %(rate)s %% against %(baseline)s %% for all leads."
        ) % {"rate": round(rate * 100), "baseline": round(baseline * 100)}
    return ""


@dataclass
class SuggestionResult:
    leads: int  # in the table
    sampled: int  # in the model's sample
    positives: int
    needed: int  # more conversions needed before anything is suggested (0: enough)
    baseline: float | None
    estimated: bool
    rows: list[Suggestion] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.needed:
            return ngettext(
                "%(positives)s lead became an opportunity or customer; suggestions need "
                "at least %(minimum)s, so %(needed)s more.",
                "%(positives)s leads became opportunities or customers; suggestions need "
                "at least %(minimum)s, so %(needed)s more.",
                self.positives,
            ) % {"positives": self.positives, "minimum": MIN_POSITIVES, "needed": self.needed}
        return ""


def _fetch(sql: str, params: list[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


LEADS = Lead._meta.db_table
EVENTS = Event._meta.db_table
_CONVERTED = "(opportunity_at IS NOT NULL OR customer_at IS NOT NULL)"
_ACTIVITY_TYPES = (
    "'page', 'track', 'form.submitted', 'email.opened', 'email.clicked', "
    "'email.replied', 'email.unsubscribed', 'email.bounced'"
)
# SQLite has no TABLESAMPLE: a fixed hash of the id keeps about ``share`` of them.
_HASH_MODULUS = 1000003
# Later than any event: SQLite compares its datetimes as text.
_NEVER_POSTGRES = "'infinity'"
_NEVER_SQLITE = "'9999-12-31'"


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _converted_at(prefix: str = "", otherwise: str = "") -> str:
    """When the lead converted: the earlier of its opportunity and customer dates
    (else ``otherwise``). SQLite's two-argument MIN is PostgreSQL's LEAST."""
    least = "LEAST" if _postgres() else "MIN"
    opp, customer = f"{prefix}opportunity_at", f"{prefix}customer_at"
    last = f", {otherwise}" if otherwise else ""
    return f"COALESCE({least}({opp}, {customer}), {opp}, {customer}{last})"


def _columns() -> str:
    return f"id, job_title, company_size, industry, country, source, {_converted_at()}"


def _sample() -> tuple[list[tuple[Any, ...]], int, int, float]:
    """(rows, leads in the table, positives in the table, share of negatives sampled)."""
    total, positives = _fetch(
        f"SELECT COUNT(*), COUNT(*) FILTER (WHERE {_CONVERTED}) FROM {LEADS}",  # noqa: S608
        [],
    )[0]
    negatives = total - positives
    share = min(1.0, MAX_NEGATIVES / negatives) if negatives else 1.0
    columns = _columns()
    # Table and column names are model constants; the numbers are bound.
    if _postgres():
        sampled = "TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s)" if share < 1.0 else ""
        rows = _fetch(
            f"(SELECT {columns} FROM {LEADS} WHERE {_CONVERTED} ORDER BY id LIMIT %s) "  # noqa: S608
            f"UNION ALL (SELECT {columns} FROM {LEADS} {sampled} WHERE NOT {_CONVERTED} "
            "ORDER BY id)",
            [MAX_POSITIVES] if share >= 1.0 else [MAX_POSITIVES, share * 100, SEED],
        )
    else:
        sampled = f"AND ((id + %s) * 2654435761) %% {_HASH_MODULUS} < %s" if share < 1.0 else ""
        rows = _fetch(
            f"SELECT * FROM (SELECT {columns} FROM {LEADS} WHERE {_CONVERTED} "  # noqa: S608
            f"ORDER BY id LIMIT %s) UNION ALL SELECT * FROM (SELECT {columns} FROM {LEADS} "
            f"WHERE NOT {_CONVERTED} {sampled} ORDER BY id)",
            [MAX_POSITIVES] if share >= 1.0 else [MAX_POSITIVES, SEED, int(share * _HASH_MODULUS)],
        )
    return rows, total, positives, share


def _page_path(url: Any) -> str:
    """A page view's path, as the PostgreSQL query cuts it: no scheme and host,
    no query string, no fragment."""
    path = re.sub(r"^[a-z]+://[^/]+", "", "" if url is None else str(url), count=1)
    return path.split("?", 1)[0].split("#", 1)[0]


def _activity_key(kind: str, name: str | None, url: Any) -> str | None:
    if kind.startswith("email."):
        return f"email:{kind[6:]}"
    if kind == "page":
        return f"page:{_page_path(url)}"
    if kind == "track":
        return None if name is None else f"track:{name}"
    if kind == "form.submitted":
        return "form:"
    return None


def _activity(ids: list[int]) -> dict[int, Counter[str]]:
    """Per lead: events before it converted, by key (``email:opened``,
    ``page:/pricing``, ``track:<name>``, ``form:``)."""
    if not ids:
        return {}
    out: dict[int, Counter[str]] = {}
    if not _postgres():
        # SQLite has no regexp_replace: the path is cut here from each distinct url.
        counts: dict[int, Counter[str]] = {}
        for lead_id, kind, name, url, count in _fetch(
            f"SELECT e.lead_id, e.type, e.name, e.properties ->> '$.url', COUNT(*) "  # noqa: S608
            f"FROM {EVENTS} e JOIN {LEADS} l ON l.id = e.lead_id "
            "WHERE e.lead_id IN (SELECT value FROM json_each(%s)) "
            f"AND e.type IN ({_ACTIVITY_TYPES}) "
            f"AND e.occurred_at < {_converted_at('l.', _NEVER_SQLITE)} "
            "GROUP BY 1, 2, 3, 4",
            [json.dumps(ids)],
        ):
            key = _activity_key(kind, name, url)
            if key is not None:
                counts.setdefault(lead_id, Counter())[key] += count
        for lead_id, keys in counts.items():
            out[lead_id] = Counter({key: min(n, COUNT_CAP) for key, n in keys.items()})
        return out
    rows = _fetch(
        "SELECT e.lead_id, CASE "  # noqa: S608
        "WHEN e.type LIKE 'email.%%' THEN 'email:' || substr(e.type, 7) "
        "WHEN e.type = 'page' THEN 'page:' || split_part(split_part("
        "regexp_replace(COALESCE(e.properties->>'url', ''), '^[a-z]+://[^/]+', ''), '?', 1), "
        "'#', 1) "
        "WHEN e.type = 'track' THEN 'track:' || e.name "
        "WHEN e.type = 'form.submitted' THEN 'form:' END AS key, COUNT(*) "
        f"FROM {EVENTS} e JOIN {LEADS} l ON l.id = e.lead_id "
        "WHERE e.lead_id = ANY(%s) "
        f"AND e.type IN ({_ACTIVITY_TYPES}) "
        f"AND e.occurred_at < {_converted_at('l.', _NEVER_POSTGRES)} "
        "GROUP BY 1, 2",
        [ids],
    )
    for lead_id, key, count in rows:
        if key is not None:
            out.setdefault(lead_id, Counter())[key] = min(count, COUNT_CAP)
    return out


def _attribute_features(rows: list[tuple[Any, ...]]) -> list[tuple[Feature, np.ndarray]]:
    """Each attribute feature with a mask of the sample rows that have it (numpy
    string and number comparisons: a Python loop per row took a second on 20,000)."""
    features: list[tuple[Feature, np.ndarray]] = []
    created = {"type": "lead.created", "config": {}}
    titles = np.array([(row[1] or "").lower() for row in rows], dtype=str)
    for key, (label, words) in TITLE_GROUPS.items():
        condition = {"any": [{"field": "job_title", "op": "contains", "value": w} for w in words]}
        mask = np.zeros(len(rows), dtype=bool)
        for word in words:
            mask |= np.char.find(titles, word) >= 0
        features.append(
            (Feature(f"title:{key}", ATTRIBUTE, str(label), FIT, created, condition), mask)
        )
    sizes = np.array([row[2] if row[2] is not None else -1 for row in rows], dtype=float)
    for low, high in SIZE_BANDS:
        mask = (sizes >= low) & (sizes <= (high if high is not None else np.inf))
        rule: dict[str, Any] = (
            {"field": "company_size", "op": "between", "value": [low, high]}
            if high is not None
            else {"field": "company_size", "op": "gte", "value": low}
        )
        label = (
            gettext("Company size %(low)s to %(high)s") % {"low": low, "high": high}
            if high is not None
            else gettext("Company size %(low)s or more") % {"low": low}
        )
        features.append(
            (Feature(f"size:{low}", ATTRIBUTE, label, FIT, created, {"all": [rule]}), mask)
        )
    named = ((3, "industry", gettext("Industry")), (4, "country", gettext("Country")))
    for column, name, word in named:
        values = np.array([row[column] or "" for row in rows], dtype=object)
        counts = Counter(v for v in values if v)
        for value, _count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]:
            condition = {"all": [{"field": name, "op": "is", "value": value}]}
            feature = Feature(
                f"{name}:{value}", ATTRIBUTE, f"{word}: {value}", FIT, created, condition
            )
            features.append((feature, values == value))
    sources = dict(LeadSource.choices)
    source_values = np.array([row[5] or "" for row in rows], dtype=object)
    for value in sorted({v for v in source_values if v}):
        label = gettext("Source: %(source)s") % {"source": sources.get(value, value)}
        features.append(
            (Feature(f"source:{value}", ATTRIBUTE, label, FIT, None), source_values == value)
        )
    return features


def _activity_feature(key: str) -> Feature:
    kind, _, value = key.partition(":")
    if kind == "email":
        return Feature(
            key,
            ACTIVITY,
            gettext("Email %(activity)s") % {"activity": value},
            ENGAGEMENT,
            {"type": "email.activity", "config": {"activity": value}},
        )
    if kind == "page":
        return Feature(
            key,
            ACTIVITY,
            gettext("Page view: %(path)s") % {"path": value},
            ENGAGEMENT,
            {"type": "page.visited", "config": {"url": {"op": "contains", "value": value}}},
        )
    if kind == "track":
        return Feature(
            key,
            ACTIVITY,
            gettext("App event: %(event)s") % {"event": value},
            ENGAGEMENT,
            {"type": "app.event", "config": {"event": value}},
        )
    return Feature(
        key,
        ACTIVITY,
        gettext("Form submitted"),
        ENGAGEMENT,
        {"type": "form.submitted", "config": {}},
    )


def _activity_keys(activity: dict[int, Counter[str]]) -> list[str]:
    """Email activities, form submissions, and the most common paths and app events."""
    leads_with: Counter[str] = Counter()
    for counts in activity.values():
        leads_with.update(counts.keys())
    keys = [k for k in leads_with if k.startswith(("email:", "form:"))]
    for prefix in ("page:", "track:"):
        ranked = sorted(
            (
                k
                for k in leads_with
                if k.startswith(prefix) and len(k) > len(prefix) and k != "page:/"
            ),
            key=lambda k: (-leads_with[k], k),
        )
        keys += ranked[:TOP_VALUES]
    return sorted(keys)


def scoring_suggestions() -> SuggestionResult:
    """Suggested points per attribute and activity, with their evidence; nothing
    but the count still needed when there are too few conversions."""
    rows, total, positives, share = _sample()
    needed = max(0, MIN_POSITIVES - positives)
    baseline = positives / total if total else None
    result = SuggestionResult(
        leads=total,
        sampled=len(rows),
        positives=positives,
        needed=needed,
        baseline=baseline,
        estimated=share < 1.0,
    )
    if needed or total == positives:
        return result
    labels = np.array([1 if row[6] is not None else 0 for row in rows])
    # A sampled non-converted lead stands for 1 / share of them.
    weights = np.where(labels == 1, 1.0, 1.0 / share)
    ids = [row[0] for row in rows]
    activity = _activity(ids)
    columns: list[tuple[Feature, np.ndarray]] = []
    for feature, mask in _attribute_features(rows):
        if int(mask.sum()) >= MIN_LEADS:
            columns.append((feature, mask.astype(float)))
    keys = _activity_keys(activity)
    position = {key: index for index, key in enumerate(keys)}
    row_of = {lead_id: index for index, lead_id in enumerate(ids)}
    counts = np.zeros((len(rows), len(keys)))
    for lead_id, by_key in activity.items():
        for key, count in by_key.items():
            if key in position:
                counts[row_of[lead_id], position[key]] = count
    for key, index in position.items():
        if np.count_nonzero(counts[:, index]) >= MIN_LEADS:
            columns.append((_activity_feature(key), counts[:, index]))
    if not columns:
        return result
    matrix = np.column_stack([c for _, c in columns])
    # Fitted on standardized columns (lbfgs converges in a few dozen steps instead
    # of hundreds), then the weights turned back into per-unit ones.
    spread = matrix.std(axis=0)
    spread[spread == 0] = 1.0
    centre = matrix.mean(axis=0)
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=0)
    model.fit((matrix - centre) / spread, labels)
    scale = POINTS_TO_DOUBLE / math.log(2)
    for (feature, column), weight in zip(columns, model.coef_[0] / spread, strict=True):
        has = column > 0
        points = int(max(-MAX_POINTS, min(MAX_POINTS, round(float(weight) * scale))))
        leads, conversions = round(float(weights[has].sum())), int(labels[has].sum())
        result.rows.append(
            Suggestion(
                feature=feature,
                points=points,
                weight=round(float(weight), 4),
                leads=leads,
                conversions=conversions,
                doubt=suggestion_doubt(
                    points=points, leads=leads, conversions=conversions, baseline=baseline
                ),
            )
        )
    result.rows.sort(key=lambda s: (-abs(s.points), s.feature.key))
    return result

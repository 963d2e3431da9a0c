"""The monthly review's numbers: how leads spread over grades and score bands,
what became of them (MQL, opportunity, customer) and how well the score ranks
them. Reads only, each figure a SQL aggregate with the count behind it, so a
rate of 1 of 2 looks as small as it is.

The definitions, in one place:

- **window**: a calendar month ``[start, end)`` (by default the last full one).
- **distribution**: every lead as it is now (grade, the A1 to D4 rating and the
  score band of its current score); the ledger has no cheap past snapshot.
- **per week**: leads that first reached MQL, opportunity or customer in the
  window, by the week (Monday) of that date.
- **the cohort** of the funnel tables: the leads that reached MQL in the window.
  Of them: how many reached opportunity and customer by now (rates MQL to
  opportunity, opportunity to customer), the median days from MQL to customer,
  and the noise: MQLs at least ``noise_days`` old with no opportunity.
- **missed**: leads that became customers in the window without ever being MQL.
- **average opportunity value**: won opportunities closed in the window, in the
  main currency only (``MAIN_CURRENCY``); won ones in other currencies are
  counted apart, never converted.
- **the score of a lead** (bands of the funnel tables, the AUC):
  ``qualified_score`` (its score when it became an opportunity or customer) when
  set, else its current score.
- **AUC**: over the leads created before the window's end, positive when it
  became a customer; the Mann-Whitney statistic with ties counted half, computed
  exactly in SQL from the counts per score value (no sample).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import statistics
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from leads.models import Lead, Opportunity, OpportunityStatus
from scoring.models import ScoringSettings

MAIN_CURRENCY = "EUR"
NOISE_DAYS = 30
LEADS = Lead._meta.db_table
OPPORTUNITIES = Opportunity._meta.db_table


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    @property
    def key(self) -> str:
        return f"{self.start:%Y-%m}"


def month_window(month: str | None = None, *, now: dt.datetime | None = None) -> Window:
    """The calendar month ``"YYYY-MM"`` (UTC), or the last full month before ``now``."""
    now = now or timezone.now()
    if month:
        year, number = (int(part) for part in month.split("-"))
        start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
    else:
        this_month = dt.datetime(now.year, now.month, 1, tzinfo=dt.UTC)
        start = (this_month - dt.timedelta(days=1)).replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return Window(start=start, end=end)


def month_choices(*, now: dt.datetime | None = None, count: int = 12) -> list[str]:
    """The last ``count`` months, the current one first: ``["2026-12", …]``."""
    now = now or timezone.now()
    start = dt.datetime(now.year, now.month, 1, tzinfo=dt.UTC)
    months = []
    for _ in range(count):
        months.append(f"{start:%Y-%m}")
        start = (start - dt.timedelta(days=1)).replace(day=1)
    return months


def default_bands(settings: ScoringSettings) -> list[int]:
    """Lower bounds of the score bands from the thresholds: below 0, 0 to warm,
    warm to hot, hot to twice hot, and above (20/50 give <0, 0-19, 20-49, 50-99, 100+)."""
    return sorted({0, settings.warm_threshold, settings.hot_threshold, 2 * settings.hot_threshold})


def band_labels(bounds: list[int]) -> list[str]:
    """Labels of the ``len(bounds) + 1`` bands, the one below the first bound first."""
    labels = [f"< {bounds[0]}"]
    for low, high in itertools.pairwise(bounds):
        labels.append(f"{low} - {high - 1}")
    labels.append(f"{bounds[-1]}+")
    return labels


@dataclass(frozen=True)
class Share:
    """``part`` of ``whole`` (the rate is None when there is no whole)."""

    part: int
    whole: int

    @property
    def rate(self) -> float | None:
        return self.part / self.whole if self.whole else None


@dataclass(frozen=True)
class FunnelRow:
    """One group (a score band, a grade, a source, or all) of the MQL cohort."""

    key: str
    label: str
    new_leads: int
    mqls: int
    opportunities: int
    customers: int
    mql_to_opportunity: Share
    opportunity_to_customer: Share
    # Won opportunities closed in the window (main currency): their count and mean.
    won: int
    average_value: Decimal | None
    # Leads of the cohort that became customers, and their median days MQL to customer.
    median_days_to_won: float | None
    noise: Share
    missed: Share


@dataclass(frozen=True)
class Auc:
    value: float | None
    leads: int
    positives: int


@dataclass(frozen=True)
class WeekRow:
    week: dt.date
    mqls: int
    opportunities: int
    customers: int


@dataclass
class ReviewReport:
    window: Window
    bands: list[int]
    band_labels: list[str]
    total_leads: int
    by_grade: dict[str, int]
    by_rating: dict[str, int]
    by_band: list[int]
    weeks: list[WeekRow]
    funnel_total: FunnelRow
    funnel_by_band: list[FunnelRow]
    funnel_by_grade: list[FunnelRow]
    funnel_by_source: list[FunnelRow]
    auc: Auc
    noise_days: int
    main_currency: str
    won_other_currency: int
    extra: dict[str, Any] = field(default_factory=dict)


_SCORE = "COALESCE(l.qualified_score, l.score)"


def _band_sql(column: str, bounds: list[int]) -> str:
    """The band's index: 0 below the first bound, i for [bound i-1, bound i) (what
    PostgreSQL's width_bucket gives, written so SQLite runs it too)."""
    whens = " ".join(f"WHEN {column} < {int(b)} THEN {i}" for i, b in enumerate(bounds))
    return f"(CASE {whens} ELSE {len(bounds)} END)"


def _band_of(score: int, bounds: list[int]) -> int:
    """What ``_band_sql`` gives, in Python."""
    return bisect.bisect_right(bounds, score)


def _time(value: dt.datetime) -> Any:
    """A datetime as a raw query's parameter: as stored (SQLite keeps UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def _fetch(sql: str, params: list[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _distribution(
    bounds: list[int], before: dt.datetime
) -> tuple[int, dict[str, int], dict[str, int], list[int], Auc]:
    """Every lead by grade, rating and band, and the AUC's counts per score: one
    scan grouped by all of them at once (a few thousand groups), summed here.
    Grouping sets took four sorts of a million rows; two scans took twice one."""
    rows = _fetch(
        f"SELECT grade, fit_grade, engagement_grade, {_band_sql('score', bounds)}, "  # noqa: S608
        f"{_SCORE}, COUNT(*), "
        "COUNT(*) FILTER (WHERE l.created_at < %s AND l.customer_at IS NOT NULL), "
        "COUNT(*) FILTER (WHERE l.created_at < %s AND l.customer_at IS NULL) "
        f"FROM {LEADS} l GROUP BY 1, 2, 3, 4, 5",
        [_time(before), _time(before)],
    )
    total, grades, ratings = 0, Counter[str](), Counter[str]()
    bands = [0] * (len(bounds) + 1)
    per_score: dict[int, list[int]] = {}
    for grade, fit, engagement, band_index, score, count, positives, negatives in rows:
        total += count
        grades[grade] += count
        ratings[f"{fit}{engagement}"] += count
        bands[band_index] += count
        if positives or negatives:
            counts = per_score.setdefault(score, [0, 0])
            counts[0] += positives
            counts[1] += negatives
    return total, dict(grades), dict(ratings), bands, _auc(per_score)


def _auc(per_score: dict[int, list[int]]) -> Auc:
    """The Mann-Whitney AUC from (positives, negatives) per score value, ties half."""
    below = wins = 0.0
    positives = negatives = 0
    for score in sorted(per_score):
        pos, neg = per_score[score]
        wins += pos * (below + neg / 2)
        below += neg
        positives += pos
        negatives += neg
    value = wins / (positives * negatives) if positives and negatives else None
    return Auc(value=value, leads=positives + negatives, positives=positives)


def _week_starts(window: Window) -> list[dt.datetime]:
    """The Mondays (00:00 UTC) of the weeks the window touches, the first one on
    or before its start."""
    start = window.start.astimezone(dt.UTC)
    first = start - dt.timedelta(days=start.weekday())
    first = first.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = []
    while first < window.end:
        starts.append(first)
        first += dt.timedelta(days=7)
    return starts


def _weeks(window: Window) -> list[WeekRow]:
    """Milestones per week: the week's index from comparisons with its Mondays,
    computed here (the same on PostgreSQL and SQLite)."""
    starts = _week_starts(window)
    params: dict[str, Any] = {"start": _time(window.start), "end": _time(window.end)}
    params.update({f"w{i}": _time(start) for i, start in enumerate(starts)})

    def week(column: str) -> str:
        whens = " ".join(f"WHEN {column} < %(w{i})s THEN {i - 1}" for i in range(1, len(starts)))
        return f"(CASE {whens} ELSE {len(starts) - 1} END)" if whens else "0"

    rows = _fetch(
        "SELECT week, SUM(m), SUM(o), SUM(c) FROM ("  # noqa: S608
        f"SELECT {week('mql_at')} AS week, 1 AS m, 0 AS o, 0 AS c FROM {LEADS} "
        "WHERE mql_at >= %(start)s AND mql_at < %(end)s "
        f"UNION ALL SELECT {week('opportunity_at')}, 0, 1, 0 FROM {LEADS} "
        "WHERE opportunity_at >= %(start)s AND opportunity_at < %(end)s "
        f"UNION ALL SELECT {week('customer_at')}, 0, 0, 1 FROM {LEADS} "
        "WHERE customer_at >= %(start)s AND customer_at < %(end)s"
        ") AS milestones GROUP BY week ORDER BY week",
        params,
    )
    return [WeekRow(starts[index].date(), int(m), int(o), int(c)) for index, m, o, c in rows]


def _ways(band_index: int, grade: str, source: str) -> list[tuple[str, Any]]:
    """The groups a lead counts in: its band, grade, source, and all."""
    return [("band", band_index), ("grade", grade), ("source", source), ("all", "")]


def _days_to_won(window: Window, bounds: list[int]) -> dict[tuple[str, Any], list[float]]:
    """The days from MQL to customer of the cohort's customers per group (a few
    rows, the mql_at index), subtracted here: the same on PostgreSQL and SQLite."""
    days: dict[tuple[str, Any], list[float]] = {}
    won = Lead.objects.filter(
        mql_at__gte=window.start, mql_at__lt=window.end, customer_at__isnull=False
    ).values_list("qualified_score", "score", "grade", "source", "mql_at", "customer_at")
    for qualified, score, grade, source, mql_at, customer_at in won:
        if mql_at is None or customer_at is None:  # the filter excludes them
            continue
        band_index = _band_of(score if qualified is None else qualified, bounds)
        waited = (customer_at - mql_at).total_seconds() / 86400.0
        for key in _ways(band_index, grade, source):
            days.setdefault(key, []).append(waited)
    return days


_COUNTS = ("new", "mqls", "opps", "customers", "judged", "noise", "won_customers", "missed")


def _funnel(
    window: Window, bounds: list[int], noise_days: int, now: dt.datetime
) -> tuple[dict[tuple[str, Any], dict[str, Any]], int]:
    """The funnel's counts for all, by band, grade and source. One pass over the
    leads that matter to the window (new, MQL or customer in it: the indexes'
    bitmaps, not every lead) grouped by band, grade and source together, summed
    here into each way of looking (grouping sets sorted the rows once per set);
    the days from MQL to customer for the medians come from the cohort's customers
    (``_days_to_won``). Then one pass over the won opportunities closed in the
    window. Portable SQL: PostgreSQL and SQLite run the same statements."""
    band = _band_sql(_SCORE, bounds)
    cohort = "(l.mql_at >= %(start)s AND l.mql_at < %(end)s)"
    params = {
        "start": _time(window.start),
        "end": _time(window.end),
        "noise_before": _time(now - dt.timedelta(days=noise_days)),
    }
    sql = (
        f"SELECT {band}, l.grade, l.source, "  # noqa: S608
        "COUNT(*) FILTER (WHERE l.created_at >= %(start)s AND l.created_at < %(end)s), "
        f"COUNT(*) FILTER (WHERE {cohort}), "
        f"COUNT(*) FILTER (WHERE {cohort} AND l.opportunity_at IS NOT NULL), "
        f"COUNT(*) FILTER (WHERE {cohort} AND l.customer_at IS NOT NULL), "
        f"COUNT(*) FILTER (WHERE {cohort} AND l.mql_at < %(noise_before)s), "
        f"COUNT(*) FILTER (WHERE {cohort} AND l.mql_at < %(noise_before)s "
        "AND l.opportunity_at IS NULL AND l.customer_at IS NULL), "
        "COUNT(*) FILTER (WHERE l.customer_at >= %(start)s AND l.customer_at < %(end)s), "
        "COUNT(*) FILTER (WHERE l.customer_at >= %(start)s AND l.customer_at < %(end)s "
        "AND l.mql_at IS NULL) "
        f"FROM {LEADS} l "
        "WHERE (l.created_at >= %(start)s AND l.created_at < %(end)s) "
        f"OR {cohort} OR (l.customer_at >= %(start)s AND l.customer_at < %(end)s) "
        "GROUP BY 1, 2, 3"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    groups: dict[tuple[str, Any], dict[str, Any]] = {}

    for band_index, grade, source, *counts in rows:
        for key in _ways(band_index, grade, source):
            group = groups.setdefault(key, dict.fromkeys(_COUNTS, 0))
            for name, count in zip(_COUNTS, counts, strict=True):
                group[name] += count
    days = _days_to_won(window, bounds)
    for key, group in groups.items():
        group["median"] = statistics.median(days[key]) if days.get(key) else None
    value_rows = _fetch(
        f"SELECT {band}, l.grade, l.source, "  # noqa: S608
        "COUNT(*) FILTER (WHERE o.currency = %s), SUM(o.value) FILTER (WHERE o.currency = %s), "
        "COUNT(*) FILTER (WHERE o.currency <> %s) "
        f"FROM {OPPORTUNITIES} o JOIN {LEADS} l ON l.id = o.lead_id "
        "WHERE o.status = %s AND o.closed_at >= %s AND o.closed_at < %s "
        "GROUP BY 1, 2, 3",
        [
            MAIN_CURRENCY,
            MAIN_CURRENCY,
            MAIN_CURRENCY,
            OpportunityStatus.WON,
            _time(window.start),
            _time(window.end),
        ],
    )
    other = 0
    for band_index, grade, source, won, total, others in value_rows:
        other += others
        for key in _ways(band_index, grade, source):
            group = groups.setdefault(key, {})
            group["won"] = group.get("won", 0) + won
            group["value"] = group.get("value", Decimal(0)) + (total or Decimal(0))
    for group in groups.values():
        if group.get("won"):
            group["average"] = (group["value"] / group["won"]).quantize(Decimal("0.01"))
    return groups, other


def _row(key: str, label: str, counts: dict[str, Any]) -> FunnelRow:
    get = counts.get
    return FunnelRow(
        key=key,
        label=label,
        new_leads=get("new", 0),
        mqls=get("mqls", 0),
        opportunities=get("opps", 0),
        customers=get("customers", 0),
        mql_to_opportunity=Share(get("opps", 0), get("mqls", 0)),
        opportunity_to_customer=Share(get("customers", 0), get("opps", 0)),
        won=get("won", 0),
        average_value=get("average"),
        median_days_to_won=get("median"),
        noise=Share(get("noise", 0), get("judged", 0)),
        missed=Share(get("missed", 0), get("won_customers", 0)),
    )


def score_auc(*, before: dt.datetime) -> Auc:
    """How well the score ranks leads created before ``before`` by whether they
    became customers: the probability that a customer outscores a non-customer
    (ties half), from the counts per score value."""
    rows = _fetch(
        f"SELECT {_SCORE}, COUNT(*) FILTER (WHERE l.customer_at IS NOT NULL), "  # noqa: S608
        f"COUNT(*) FILTER (WHERE l.customer_at IS NULL) FROM {LEADS} l "
        "WHERE l.created_at < %s GROUP BY 1",
        [_time(before)],
    )
    return _auc({score: [pos, neg] for score, pos, neg in rows})


def review_report(
    *,
    window: Window,
    settings: ScoringSettings,
    bands: list[int] | None = None,
    noise_days: int = NOISE_DAYS,
    now: dt.datetime | None = None,
    labels: dict[str, dict[str, str]] | None = None,
) -> ReviewReport:
    """The review's numbers for ``window``: six statements however many leads.
    ``labels`` name grades and sources ({"grade": {...}, "source": {...}})."""
    now = now or timezone.now()
    bounds = sorted(bands) if bands else default_bands(settings)
    names = band_labels(bounds)
    labels = labels or {}
    total, by_grade, by_rating, by_band, auc = _distribution(bounds, window.end)
    groups, other = _funnel(window, bounds, noise_days, now)

    def rows(kind: str, keys: list[Any], label_of: dict[Any, str]) -> list[FunnelRow]:
        present = {key for (k, key) in groups if k == kind}
        ordered = [k for k in keys if k in present] + sorted(
            (k for k in present if k not in keys), key=str
        )
        return [_row(str(k), label_of.get(k, str(k) or "-"), groups[(kind, k)]) for k in ordered]

    grade_labels = labels.get("grade", {})
    source_labels = labels.get("source", {})
    return ReviewReport(
        window=window,
        bands=bounds,
        band_labels=names,
        total_leads=total,
        by_grade=by_grade,
        by_rating=by_rating,
        by_band=by_band,
        weeks=_weeks(window),
        funnel_total=_row("all", "", groups.get(("all", ""), {})),
        funnel_by_band=rows("band", list(range(len(names))), dict(enumerate(names))),
        funnel_by_grade=rows("grade", list(grade_labels), grade_labels),
        funnel_by_source=rows("source", list(source_labels), source_labels),
        auc=auc,
        noise_days=noise_days,
        main_currency=MAIN_CURRENCY,
        won_other_currency=other,
    )

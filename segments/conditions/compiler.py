"""Compile a validated condition tree into a Django ``Q`` over ``Lead``.

Semantics, mirrored exactly by the plain-Python evaluator in the tests:
text comparisons ignore case; a missing value (NULL, or no custom key) fails
every positive test and passes its negation (``is_not``, ``not_contains``,
``ne``, ``has_not``); dates compare by UTC day; relative ranges are measured
from ``now``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from leads.models import Event, FieldDefinition, Lead, SegmentMembership
from scoring.lead_scores import category_points
from segments.conditions.schema import (
    BLANK_CHOICE_FIELDS,
    FIELD_TYPES,
    field_type,
    parse_date,
)


def compile_tree(
    tree: dict[str, Any],
    *,
    now: dt.datetime | None = None,
    definitions: dict[str, Any] | None = None,
    per_lead: bool = False,
) -> Q:
    """The ``Q`` selecting the leads that match ``tree`` (validated beforehand).
    Pass ``definitions`` (custom fields by key) when compiling many trees.

    ``per_lead`` compiles for evaluating one lead at a time (as a column of a
    query on that lead): activity counts are then correlated to the lead, where
    the set form would aggregate every lead's events."""
    return Compiler(now or timezone.now(), definitions, per_lead=per_lead).node(tree)


# Explicit truth values: an empty Q() vanishes when OR-ed, which would turn
# "any of (everything)" into "nothing".
TRUE = Q(pk__isnull=False)
FALSE = Q(pk__in=[])


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


class Compiler:
    """Compiles trees against one clock; one compiler reads the custom field
    definitions at most once for all the trees it compiles."""

    def __init__(
        self,
        now: dt.datetime,
        definitions: dict[str, Any] | None = None,
        *,
        per_lead: bool = False,
    ):
        self.now = now
        self._definitions = definitions
        self.per_lead = per_lead
        # The offsets from ``now`` of the moments compiled into the statement, so
        # that a statement compiled once can be run later with the moments moved
        # (``segments.check``); ``volatile`` when it also holds values derived
        # from now in another way (the days of custom date rules).
        self.moments: set[dt.timedelta] = set()
        self.volatile = False

    def moment(self, offset: dt.timedelta) -> dt.datetime:
        """``now`` moved by ``offset``, remembered as a moment of the statement."""
        self.moments.add(offset)
        return self.now + offset

    @property
    def definitions(self) -> dict[str, Any]:
        """Custom field definitions, read once and only for a tree that has custom
        field rules."""
        if self._definitions is None:
            self._definitions = {d.key: d for d in FieldDefinition.objects.all()}
        return self._definitions

    def node(self, node: dict[str, Any]) -> Q:
        if "all" in node:
            if not node["all"]:
                return TRUE
            q = self.node(node["all"][0])
            for child in node["all"][1:]:
                q &= self.node(child)
            return q
        if "any" in node:
            if not node["any"]:
                return FALSE
            q = self.node(node["any"][0])
            for child in node["any"][1:]:
                q |= self.node(child)
            return q
        if "field" in node:
            return self.field(node)
        if "activity" in node:
            return self.activity(node)
        return self.segment(node)

    # --- field rules -------------------------------------------------------------
    def field(self, rule: dict[str, Any]) -> Q:
        name: str = rule["field"]
        op: str = rule["op"]
        value = rule.get("value")
        if name == "tags":
            return self.tags(op, value)
        if name == "owner":
            return self.owner(op, value)
        if name.startswith("score."):
            return self.category_score(name[6:], op, value)
        kind = field_type(name, self.definitions if name.startswith("custom.") else {})
        column = name if name in FIELD_TYPES else f"custom_fields__{name[7:]}"
        custom = name not in FIELD_TYPES
        if kind == "text":
            return self.text(column, op, value, custom)
        if kind == "number":
            return self.number(column, op, value, custom)
        if kind == "date":
            return self.date(column, op, value, custom)
        if kind == "boolean":
            return Q(**{column: value})
        # choice
        if op == "is":
            return Q(**{column: value})
        if op == "is_not":
            return ~Q(**{column: value}) | self.missing(column, custom)
        if op == "in":
            return Q(**{f"{column}__in": value})
        return self.present(column, custom) if op == "is_set" else ~self.present(column, custom)

    def present(self, column: str, custom: bool) -> Q:
        if custom:
            key = column.removeprefix("custom_fields__")
            return Q(custom_fields__has_key=key) & ~Q(**{column: None}) & ~Q(**{column: ""})
        q = Q(**{f"{column}__isnull": False})
        if FIELD_TYPES.get(column) == "text" or column in BLANK_CHOICE_FIELDS:
            q &= ~Q(**{column: ""})
        return q

    def missing(self, column: str, custom: bool) -> Q:
        if custom:
            key = column.removeprefix("custom_fields__")
            return ~Q(custom_fields__has_key=key) | Q(**{column: None})
        return Q(**{f"{column}__isnull": True})

    def text(self, column: str, op: str, value: Any, custom: bool) -> Q:
        if op in ("is_set", "is_not_set"):
            present = self.present(column, custom)
            return present if op == "is_set" else ~present
        if op == "in":
            q = FALSE
            for item in value:
                q |= Q(**{f"{column}__iexact": item})
            return self.present(column, custom) & q
        lookup = {
            "is": "iexact",
            "is_not": "iexact",
            "contains": "icontains",
            "not_contains": "icontains",
            "starts_with": "istartswith",
            "ends_with": "iendswith",
        }[op]
        q = self.present(column, custom) & Q(**{f"{column}__{lookup}": value})
        return ~q if op in ("is_not", "not_contains") else q

    def number(self, column: str, op: str, value: Any, custom: bool) -> Q:
        if op in ("is_set", "is_not_set"):
            present = self.present(column, custom)
            return present if op == "is_set" else ~present
        present = self.present(column, custom)
        if op == "between":
            return present & Q(**{f"{column}__gte": value[0], f"{column}__lte": value[1]})
        if op in ("eq", "ne"):
            q = present & Q(**{column: value})
            return ~q if op == "ne" else q
        return present & Q(**{f"{column}__{op}": value})

    def date(self, column: str, op: str, value: Any, custom: bool) -> Q:
        if op in ("is_set", "is_not_set"):
            present = self.present(column, custom)
            return present if op == "is_set" else ~present
        today = self.now.astimezone(dt.UTC).date()
        if op in ("before", "after", "on", "between"):
            if op == "between":
                first, last = parse_date(value[0]), parse_date(value[1])
            else:
                first = last = parse_date(value)
            assert first is not None
            assert last is not None
            low: dt.date | None = first
            high: dt.date | None = last + dt.timedelta(days=1)
            if op == "before":
                low, high = None, first
            elif op == "after":
                low, high = last + dt.timedelta(days=1), None
            return self.date_range(column, custom, low, high)
        days = dt.timedelta(days=value)
        if custom:
            self.volatile = True
            # Custom dates are days: "in the last N days" is today-N .. today.
            ranges: dict[str, tuple[dt.date | None, dt.date | None]] = {
                "in_last_days": (today - days, today + dt.timedelta(days=1)),
                "more_than_days_ago": (None, today - days),
                "in_next_days": (today, today + days + dt.timedelta(days=1)),
            }
            return self.date_range(column, custom, *ranges[op])
        zero = dt.timedelta()
        moments = {
            "in_last_days": (-days, zero),
            "more_than_days_ago": (None, -days),
            "in_next_days": (zero, days),
        }
        start_offset, end_offset = moments[op]
        start = None if start_offset is None else self.moment(start_offset)
        end = self.moment(end_offset)
        q = self.present(column, custom)
        if start is not None:
            q &= Q(**{f"{column}__gte": start})
        if op == "more_than_days_ago":
            return q & Q(**{f"{column}__lt": end})
        return q & Q(**{f"{column}__lte": end})

    def date_range(self, column: str, custom: bool, low: dt.date | None, high: dt.date | None) -> Q:
        q = self.present(column, custom)
        if custom:
            if low is not None:
                q &= Q(**{f"{column}__gte": low.isoformat()})
            if high is not None:
                q &= Q(**{f"{column}__lt": high.isoformat()})
            return q
        if low is not None:
            q &= Q(**{f"{column}__gte": day_start(low)})
        if high is not None:
            q &= Q(**{f"{column}__lt": day_start(high)})
        return q

    def category_score(self, key: str, op: str, value: Any) -> Q:
        """Points in one category; a lead with none there has 0."""
        points = category_points(key)
        if op in ("is_set", "is_not_set"):
            return TRUE if op == "is_set" else FALSE
        if op == "between":
            return Q(GreaterThanOrEqual(points, value[0])) & Q(LessThanOrEqual(points, value[1]))
        lookups = {
            "eq": Exact,
            "gt": GreaterThan,
            "gte": GreaterThanOrEqual,
            "lt": LessThan,
            "lte": LessThanOrEqual,
        }
        if op == "ne":
            return ~Q(Exact(points, value))
        return Q(lookups[op](points, value))

    def owner(self, op: str, value: Any) -> Q:
        if op == "is":
            return Q(owner_id=value)
        if op == "is_not":
            return ~Q(owner_id=value) | Q(owner__isnull=True)
        if op == "in":
            return Q(owner_id__in=value)
        return Q(owner__isnull=op == "is_not_set")

    def tags(self, op: str, value: Any) -> Q:
        through = Lead.tags.through

        def has(names: list[str]) -> Exists:
            return Exists(through.objects.filter(lead_id=OuterRef("pk"), tag__name__in=names))

        if op == "has":
            return Q(has([value]))
        if op == "has_not":
            return ~Q(has([value]))
        if op == "has_any":
            return Q(has(value))
        q = TRUE
        for name in value:
            q &= Q(has([name]))
        return q

    # --- activity rules ----------------------------------------------------------
    def activity_events(self, rule: dict[str, Any]) -> Q:
        """The events an activity rule counts, as a condition on ``Event``."""
        q = Q(type=rule["activity"])
        if "name" in rule:
            q &= Q(name=rule["name"])
        for prop, test in rule.get("where", {}).items():
            q &= self.property(prop, test["op"], test["value"])
        if "within_days" in rule:
            q &= Q(occurred_at__gte=self.moment(-dt.timedelta(days=rule["within_days"])))
        elif "between" in rule:
            first, last = parse_date(rule["between"][0]), parse_date(rule["between"][1])
            assert first is not None
            assert last is not None
            q &= Q(
                occurred_at__gte=day_start(first),
                occurred_at__lt=day_start(last + dt.timedelta(days=1)),
            )
        return q

    def activity(self, rule: dict[str, Any]) -> Q:
        events = Event.objects.filter(self.activity_events(rule))
        count = rule.get("count", {"op": "gte", "value": 1})
        op, n = count["op"], count["value"]
        if (op == "gte" and n <= 1) or (op == "eq" and n == 0) or (op == "lte" and n == 0):
            exists = Q(Exists(events.filter(lead_id=OuterRef("pk"))))
            if op == "gte":
                return exists if n == 1 else TRUE
            return ~exists
        if op in ("gte", "eq") and not self.per_lead:
            # Needs at least one event: group the matching events once and take
            # their leads, rather than counting per lead (one scan, not one per lead;
            # see bench/segmentation.py). For one lead the planner still narrows by lead.
            having = {"n__gte": n} if op == "gte" else {"n": n}
            grouped = (
                events.filter(lead__isnull=False)
                .order_by()
                .values("lead_id")
                .annotate(n=Count("id"))
                .filter(**having)
                .values("lead_id")
            )
            return Q(pk__in=grouped)
        counted = Coalesce(
            Subquery(
                events.filter(lead_id=OuterRef("pk"))
                .order_by()
                .values("lead_id")
                .annotate(n=Count("id"))
                .values("n")[:1]
            ),
            0,
        )
        lookup = {"gte": GreaterThanOrEqual, "lte": LessThanOrEqual, "eq": Exact}[op]
        return Q(lookup(counted, n))

    def property(self, prop: str, op: str, value: Any) -> Q:
        column = f"properties__{prop}"
        # Absent, or JSON null: no value, which fails every positive test.
        present = Q(properties__has_key=prop) & ~Q(**{column: None})
        if op in ("gt", "gte", "lt", "lte"):
            return present & Q(**{f"{column}__{op}": value})
        if isinstance(value, bool) or not isinstance(value, str):
            q = Q(**{column: value})
        else:
            lookup = {
                "is": "iexact",
                "is_not": "iexact",
                "contains": "icontains",
                "starts_with": "istartswith",
                "ends_with": "iendswith",
            }[op]
            q = Q(**{f"{column}__{lookup}": value})
        q = present & q
        return ~q if op == "is_not" else q

    # --- segment rules -----------------------------------------------------------
    def segment(self, rule: dict[str, Any]) -> Q:
        member = Exists(
            SegmentMembership.objects.filter(
                lead_id=OuterRef("pk"), segment_id=rule["segment"], left_at__isnull=True
            )
        )
        return Q(member) if rule["op"] == "in" else ~Q(member)

"""The leads list: filters, sorts, keyset pages, bulk actions and the CSV export."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.http import StreamingHttpResponse

from leads.models import Event, Lead, SegmentMembership, Tag
from leads.services.bulk import leads_stage_set
from leads.views.list import PAGE_SIZE
from tests.factories import (
    FieldDefinitionFactory,
    LeadFactory,
    SegmentFactory,
    SegmentMembershipFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def _ids(response) -> list[int]:
    """Lead ids in the order the page lists them."""
    return [int(i) for i in re.findall(rb'name="bulk-lead" value="(\d+)"', response.content)]


def _next_url(response) -> str | None:
    match = re.search(rb'id="more-row".*?hx-get="([^"]+)"', response.content, re.S)
    return html.unescape(match.group(1).decode()) if match else None


def _all_pages(client, url: str) -> list[int]:
    response = client.get(url)
    ids = _ids(response)
    next_url = _next_url(response)
    while next_url:
        response = client.get(next_url, **HTMX)
        assert b"<table" not in response.content
        ids += _ids(response)
        next_url = _next_url(response)
    return ids


def _lead(**fields) -> Lead:
    created_at = fields.pop("created_at", None)
    tags = fields.pop("tags", ())
    lead = LeadFactory.create(**fields)
    if created_at is not None:
        Lead.objects.filter(pk=lead.pk).update(created_at=created_at)
    if tags:
        lead.tags.add(*(Tag.objects.get_or_create(name=name)[0] for name in tags))
    return lead


# --- filters and sorts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=ada", ["ada"]),
        ("q=grace%40navy", ["grace"]),
        ("q=initech", ["linus"]),
        ("grade=hot", ["grace"]),
        ("stage=mql", ["linus"]),
        ("owner=none", ["grace", "linus"]),
        ("tag=vip", ["ada", "linus"]),
        ("score_min=10&score_max=40", ["ada", "linus"]),
        ("score_min=41", ["grace"]),
        ("q=nobody", []),
    ],
)
def test_each_filter(client, marketer, query, expected):
    leads = {
        "ada": _lead(
            first_name="Ada",
            last_name="Lovelace",
            email="ada@acme.example",
            score=10,
            owner=marketer,
            tags=["vip"],
        ),
        # Last names fixed: a made-up one ("Adams", "Estrada") matched "q=ada".
        "grace": _lead(
            first_name="Grace",
            last_name="Hopper",
            email="grace@navy.example",
            score=50,
            grade="hot",
        ),
        "linus": _lead(
            first_name="Linus",
            last_name="Torvalds",
            company_name="Initech",
            score=40,
            stage="mql",
            tags=["vip", "x"],
        ),
    }
    client.force_login(marketer)

    ids = _ids(client.get(f"/leads/?{query}"))

    assert sorted(ids) == sorted(leads[name].pk for name in expected)


def test_filter_by_owner_and_segment(client, marketer, sales):
    mine, theirs, out = _lead(owner=sales), _lead(), _lead()
    segment = SegmentFactory.create(name="Webinar", static=True)
    for lead in (mine, theirs):
        SegmentMembershipFactory.create(segment=segment, lead=lead, entered_at=T0)
    SegmentMembershipFactory.create(segment=segment, lead=out, entered_at=T0, left_at=T0)
    client.force_login(marketer)

    assert _ids(client.get(f"/leads/?owner={sales.pk}")) == [mine.pk]
    assert _ids(client.get(f"/leads/?segment={segment.pk}")) == [theirs.pk, mine.pk]
    assert _ids(client.get(f"/leads/?segment={segment.pk}&owner=none")) == [theirs.pk]


def test_an_invalid_filter_value_is_ignored(client, marketer):
    lead = _lead()
    client.force_login(marketer)

    response = client.get("/leads/?score_min=abc&owner=x&sort=nope&segment=-1")

    assert response.status_code == 200
    assert _ids(response) == [lead.pk]


def test_sorts_break_ties_by_id(client, marketer):
    a = _lead(score=5, created_at=T0, last_activity_at=None)
    b = _lead(score=9, created_at=T0, last_activity_at=T0)
    c = _lead(score=5, created_at=T0 + dt.timedelta(hours=1), last_activity_at=T0)
    d = _lead(score=1, created_at=T0, last_activity_at=T0 + dt.timedelta(days=1))
    client.force_login(marketer)

    assert _ids(client.get("/leads/")) == [c.pk, d.pk, b.pk, a.pk]
    assert _ids(client.get("/leads/?sort=created")) == [c.pk, d.pk, b.pk, a.pk]
    assert _ids(client.get("/leads/?sort=score")) == [b.pk, c.pk, a.pk, d.pk]
    assert _ids(client.get("/leads/?sort=activity")) == [d.pk, c.pk, b.pk, a.pk]


@pytest.mark.parametrize("sort", ["created", "score", "activity"])
def test_pages_have_no_duplicates_or_gaps_with_ties(client, marketer, sort):
    # Given 130 leads whose sort values tie in large groups (and some null activity)
    for n in range(130):
        _lead(
            score=n % 3,
            created_at=T0 + dt.timedelta(minutes=n % 4),
            last_activity_at=None if n % 5 == 0 else T0 + dt.timedelta(seconds=n % 2),
        )
    client.force_login(marketer)
    field = {"created": "created_at", "score": "score", "activity": "last_activity_at"}[sort]
    rows = list(Lead.objects.values_list(field, "id"))
    present = sorted((row for row in rows if row[0] is not None), reverse=True)
    nulls = sorted((row for row in rows if row[0] is None), reverse=True)
    expected = [pk for _, pk in present + nulls]

    # When every page is loaded in turn
    ids = _all_pages(client, f"/leads/?sort={sort}")

    # Then each lead shows once, in order
    assert len(_ids(client.get(f"/leads/?sort={sort}"))) == PAGE_SIZE
    assert ids == expected


def test_load_more_keeps_the_filter(client, marketer):
    hot = [_lead(grade="hot", score=n) for n in range(PAGE_SIZE + 3)]
    _lead(grade="cold", score=100)
    client.force_login(marketer)

    first = client.get("/leads/?grade=hot&sort=score")
    next_url = _next_url(first)

    assert next_url is not None
    assert "grade=hot" in next_url
    assert "sort=score" in next_url
    more = client.get(next_url, **HTMX)
    assert _ids(more) == [hot[2].pk, hot[1].pk, hot[0].pk]
    assert _next_url(more) is None


def test_a_stale_or_broken_cursor_starts_over_or_shows_nothing(client, marketer):
    lead = _lead()
    client.force_login(marketer)

    assert _ids(client.get("/leads/?after=garbage~x", **HTMX)) == [lead.pk]
    assert _ids(client.get("/leads/?after=999999", **HTMX)) == [lead.pk]
    assert _ids(client.get(f"/leads/?after=2025-03-01T12:00:00%2B00:00~{lead.pk}", **HTMX)) == []


# --- htmx -------------------------------------------------------------------------------


def test_htmx_gets_the_results_or_the_rows_and_others_the_page(client, marketer):
    _lead(first_name="Ada")
    client.force_login(marketer)

    page = client.get("/leads/?q=ada")
    results = client.get("/leads/?q=ada", **HTMX)
    restored = client.get("/leads/?q=ada", HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX)

    assert b"<html" in page.content
    assert b'id="lead-filters"' in page.content
    assert b'hx-push-url="true"' in page.content
    assert b"<html" not in results.content
    assert b'id="lead-filters"' not in results.content
    assert b'<tbody id="lead-rows">' in results.content
    assert b"<html" in restored.content


def test_query_count_does_not_grow_with_rows(client, sales, django_assert_max_num_queries):
    client.force_login(sales)
    SegmentFactory.create(name="Static", static=True)
    LeadFactory.create_batch(3, owner=sales)
    # One of them reads the custom fields (the columns a user may choose).
    with django_assert_max_num_queries(9):
        small = client.get("/leads/")
    for lead in LeadFactory.create_batch(80, owner=sales):
        lead.tags.add(Tag.objects.get_or_create(name="vip")[0])
    with django_assert_max_num_queries(10):
        large = client.get("/leads/?tag=vip")
    with django_assert_max_num_queries(6):
        more = client.get(_next_url(large), **HTMX)

    assert len(_ids(small)) == 3
    assert len(_ids(large)) == PAGE_SIZE
    assert len(_ids(more)) == 30


# --- empty states ---------------------------------------------------------------------


def test_empty_states_say_what_to_do(client, marketer):
    client.force_login(marketer)

    nothing = client.get("/leads/").content.decode()
    _lead(first_name="Ada")
    no_match = client.get("/leads/?q=zzz").content.decode()

    assert "No leads yet." in nothing
    assert 'href="/leads/import/"' in nothing
    assert "No leads match this filter." in no_match
    assert '<a href="/leads/">Clear the filter</a>' in no_match


# --- bulk actions -----------------------------------------------------------------------


def _events(type_: str, name: str | None = None) -> list[int]:
    events = Event.objects.filter(type=type_)
    if name is not None:
        events = events.filter(name=name)
    return sorted(events.values_list("lead_id", flat=True))


def test_bulk_assign_owner_emits_one_event_per_changed_lead(client, marketer, sales):
    a, b = _lead(), _lead()
    already = _lead(owner=sales)
    client.force_login(marketer)

    response = client.post(
        "/leads/bulk/",
        {"bulk-action": "owner", "bulk-owner": sales.pk, "bulk-lead": [a.pk, b.pk, already.pk]},
        **HTMX,
    )

    assert response.status_code == 200
    assert "Assign owner: 2 of 3 leads changed." in response.content.decode()
    assert set(Lead.objects.values_list("owner_id", flat=True)) == {sales.pk}
    assert _events("field.changed", "owner") == sorted([a.pk, b.pk])


def test_bulk_unassign(client, marketer, sales):
    lead = _lead(owner=sales)
    client.force_login(marketer)

    client.post(
        "/leads/bulk/", {"bulk-action": "owner", "bulk-owner": "none", "bulk-lead": lead.pk}
    )

    lead.refresh_from_db()
    assert lead.owner_id is None
    assert _events("field.changed", "owner") == [lead.pk]


def test_bulk_tags_add_and_remove(client, marketer):
    tagged = _lead(tags=["vip"])
    plain = _lead()
    client.force_login(marketer)

    client.post(
        "/leads/bulk/",
        {"bulk-action": "tag_add", "bulk-tag": " vip ", "bulk-lead": [tagged.pk, plain.pk]},
    )
    assert _events("tag.added", "vip") == [plain.pk]
    assert set(plain.tags.values_list("name", flat=True)) == {"vip"}

    response = client.post(
        "/leads/bulk/",
        {"bulk-action": "tag_remove", "bulk-tag": "vip", "bulk-lead": [tagged.pk, plain.pk]},
        **HTMX,
    )

    assert "Remove tag: 2 of 2 leads changed." in response.content.decode()
    assert _events("tag.removed", "vip") == sorted([tagged.pk, plain.pk])
    assert not Lead.tags.through.objects.exists()


def test_bulk_add_to_static_segment(client, marketer):
    segment = SegmentFactory.create(name="Fair 2025", static=True)
    inside, a, b = _lead(), _lead(), _lead()
    SegmentMembershipFactory.create(segment=segment, lead=inside, entered_at=T0)
    client.force_login(marketer)

    response = client.post(
        "/leads/bulk/",
        {
            "bulk-action": "segment",
            "bulk-segment": segment.pk,
            "bulk-lead": [inside.pk, a.pk, b.pk],
        },
        **HTMX,
    )

    assert "Add to static segment: 2 of 3 leads changed." in response.content.decode()
    assert _events("segment.entered") == sorted([a.pk, b.pk])
    assert sorted(
        SegmentMembership.objects.filter(segment=segment, left_at__isnull=True).values_list(
            "lead_id", flat=True
        )
    ) == sorted([inside.pk, a.pk, b.pk])


def test_bulk_refuses_a_dynamic_segment(client, marketer):
    segment = SegmentFactory.create(name="Dyn")
    lead = _lead()
    client.force_login(marketer)

    response = client.post(
        "/leads/bulk/",
        {"bulk-action": "segment", "bulk-segment": segment.pk, "bulk-lead": lead.pk},
        **HTMX,
    )

    assert response.status_code == 422
    assert "Choose a static segment." in response.content.decode()
    assert not SegmentMembership.objects.exists()


def test_bulk_change_stage(client, marketer):
    lead, same = _lead(stage="lead"), _lead(stage="sql")
    client.force_login(marketer)

    response = client.post(
        "/leads/bulk/",
        {"bulk-action": "stage", "bulk-stage": "sql", "bulk-lead": [lead.pk, same.pk]},
    )

    assert response.status_code == 302
    assert response["Location"] == "/leads/"
    assert list(Lead.objects.values_list("stage", flat=True).distinct()) == ["sql"]
    events = Event.objects.filter(type="field.changed", name="stage")
    assert [(e.lead_id, e.properties["from"], e.properties["to"]) for e in events] == [
        (lead.pk, "lead", "sql")
    ]
    page = client.get("/leads/").content.decode()
    assert "Change stage: 1 of 2 leads changed." in page


def test_bulk_needs_a_selection_and_a_value(client, marketer):
    lead = _lead()
    client.force_login(marketer)

    nothing = client.post("/leads/bulk/", {"bulk-action": "stage", "bulk-stage": "sql"}, **HTMX)
    no_value = client.post("/leads/bulk/", {"bulk-action": "tag_add", "bulk-lead": lead.pk}, **HTMX)

    assert nothing.status_code == 422
    assert "Select leads first." in nothing.content.decode()
    assert no_value.status_code == 422
    assert "Enter a tag." in no_value.content.decode()
    assert not Event.objects.exists()


def test_select_all_matching_asks_with_the_count_then_applies_to_the_filter(client, marketer):
    matching = [_lead(grade="hot") for _ in range(3)]
    other = _lead(grade="cold")
    client.force_login(marketer)
    data = {"grade": "hot", "bulk-action": "tag_add", "bulk-tag": "fair", "bulk-all_matching": "1"}

    confirm = client.post("/leads/bulk/", data, **HTMX)

    page = confirm.content.decode()
    assert "Add tag: this changes all 3 leads matching the filter. Go ahead?" in page
    assert '<input type="hidden" name="bulk-confirmed" value="1">' in page
    assert '<input type="hidden" name="grade" value="hot">' in page
    assert not Event.objects.exists()

    done = client.post("/leads/bulk/", {**data, "bulk-confirmed": "1"}, **HTMX)

    assert "Add tag: 3 of 3 leads changed." in done.content.decode()
    assert _events("tag.added", "fair") == sorted(lead.pk for lead in matching)
    assert not other.tags.exists()


def test_select_all_without_htmx_confirms_on_the_page(client, marketer):
    _lead(stage="lead")
    client.force_login(marketer)

    response = client.post(
        "/leads/bulk/",
        {"stage": "lead", "bulk-action": "stage", "bulk-stage": "mql", "bulk-all_matching": "1"},
    )

    assert response.status_code == 200
    assert b"<html" in response.content
    assert "Change stage: this changes the 1 lead matching the filter." in response.content.decode()


def test_sales_cannot_bulk_edit_another_reps_lead(client, sales, other_sales):
    own, unassigned = _lead(owner=sales), _lead()
    theirs = _lead(owner=other_sales)
    client.force_login(sales)

    by_id = client.post(
        "/leads/bulk/",
        {"bulk-action": "stage", "bulk-stage": "sql", "bulk-lead": [own.pk, theirs.pk]},
        **HTMX,
    )
    everything = client.post(
        "/leads/bulk/",
        {
            "bulk-action": "tag_add",
            "bulk-tag": "mine",
            "bulk-all_matching": "1",
            "bulk-confirmed": "1",
        },
        **HTMX,
    )

    assert "Change stage: 1 of 1 lead changed." in by_id.content.decode()
    assert "Add tag: 2 of 2 leads changed." in everything.content.decode()
    theirs.refresh_from_db()
    assert theirs.stage == "subscriber"
    assert not theirs.tags.exists()
    assert _events("tag.added", "mine") == sorted([own.pk, unassigned.pk])


def test_bulk_service_works_in_batches():
    leads = [_lead(stage="lead") for _ in range(5)]
    Lead.objects.filter(pk=leads[0].pk).update(stage="mql")

    result = leads_stage_set(leads=Lead.objects.all(), stage="mql", batch_size=2)

    assert (result.total, result.changed) == (5, 4)
    assert _events("field.changed", "stage") == sorted(lead.pk for lead in leads[1:])


# --- CSV export ---------------------------------------------------------------------------


def test_csv_export_of_the_filter(client, marketer, sales):
    """The chosen columns in their order, labelled as the page's headers, times in
    ISO 8601 to the second, the owner by name, formulas defused."""
    FieldDefinitionFactory.create(key="region", label="Region", type="text")
    sales.first_name, sales.last_name = "Sam", "Seller"
    sales.save()
    owner = UserFactory.create(username="=owner", role="sales")
    _lead(
        email="ada@acme.example",
        first_name="Ada",
        last_name="Lovelace",
        company_name="Acme, Inc.",
        job_title="CTO",
        stage="mql",
        grade="hot",
        score=-5,
        owner=sales,
        source="import",
        custom_fields={"region": "Nord"},
        tags=["vip", "fair"],
        created_at=T0 + dt.timedelta(microseconds=123456),
        last_activity_at=T0 + dt.timedelta(days=1, seconds=2, microseconds=5),
    )
    _lead(
        email="bob@acme.example",
        first_name="=HYPERLINK(1)",
        last_name="+1",
        company_name="-2",
        job_title="@SUM(A1)",
        stage="lead",
        grade="hot",
        score=7,
        owner=owner,
        created_at=T0 + dt.timedelta(hours=1),
        last_activity_at=None,
    )
    _lead(email="cold@acme.example", grade="cold")
    client.force_login(marketer)
    client.post(
        "/leads/columns/",
        {
            "order": [
                "custom:region",
                "job_title",
                "owner",
                "created",
                "stage",
                "source",
                "score",
                "last_activity",
                "company",
            ],
            "column": [
                "custom:region",
                "job_title",
                "owner",
                "created",
                "stage",
                "source",
                "score",
                "last_activity",
                "company",
            ],
        },
    )

    response = client.get("/leads/export.csv?grade=hot")

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="leads-\d{8}-\d{4}\.csv"', response["Content-Disposition"]
    )
    body = response.getvalue().decode()
    assert body.splitlines() == [
        "Name,Email,Region,Job title,Owner,Created,Stage,Source,Score,Last activity,Company",
        "'=HYPERLINK(1) +1,bob@acme.example,,'@SUM(A1),'=owner,2025-03-01T13:00:00+00:00,"
        "Lead,,7,,'-2",
        "Ada Lovelace,ada@acme.example,Nord,CTO,Sam Seller,2025-03-01T12:00:00+00:00,"
        "Marketing qualified,"
        'Import,-5,2025-03-02T12:00:02+00:00,"Acme, Inc."',
    ]


def test_csv_export_is_scoped_and_sorted(client, sales, other_sales):
    _lead(email="low@acme.example", owner=sales, score=1)
    _lead(email="high@acme.example", score=9)
    _lead(email="theirs@acme.example", owner=other_sales, score=5)
    client.force_login(sales)

    response = client.get("/leads/export.csv?sort=score")

    rows = response.getvalue().decode().splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == ["high@acme.example", "low@acme.example"]


def test_the_list_links_the_export_with_the_filter(client, marketer):
    _lead(grade="hot")
    client.force_login(marketer)

    page = client.get("/leads/?grade=hot&sort=score").content.decode()

    assert 'href="/leads/export.csv?grade=hot&amp;sort=score"' in page

"""The leads list's chosen columns (saved per user) and sorting by a column's
header, both ways round, across keyset pages."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest

from leads.models import Lead, UserPreference
from leads.views.list import PAGE_SIZE
from tests.factories import FieldDefinitionFactory, LeadFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def _ids(response) -> list[int]:
    return [int(i) for i in re.findall(rb'name="bulk-lead" value="(\d+)"', response.content)]


def _all_pages(client, url: str) -> tuple[list[int], int]:
    response = client.get(url)
    ids, pages = _ids(response), 1
    while match := re.search(rb'id="more-row".*?hx-get="([^"]+)"', response.content, re.S):
        response = client.get(html.unescape(match.group(1).decode()), **HTMX)
        ids += _ids(response)
        pages += 1
    return ids, pages


def _headers(response) -> list[str]:
    match = re.search(rb"<thead>(.*?)</thead>", response.content, re.S)
    assert match is not None
    head = match.group(1).decode()
    return [
        re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<th[^>]*>(.*?)</th>", head)
    ]


def _save(client, order: list[str], checked: list[str], **extra) -> None:
    response = client.post("/leads/columns/", {"order": order, "column": checked, **extra})
    assert response.status_code == 302


def test_chosen_columns_are_saved_in_their_order_and_shown(client, marketer):
    FieldDefinitionFactory.create(key="region", label="Region", type="text")
    LeadFactory.create(
        email="a@x.example", job_title="CTO", company_name="Acme", custom_fields={"region": "Nord"}
    )
    client.force_login(marketer)

    # Unticked columns are not kept; unknown keys and repeats are dropped.
    _save(
        client,
        ["custom:region", "job_title", "company", "stage", "nope", "job_title"],
        ["custom:region", "job_title", "company", "nope"],
    )

    assert UserPreference.objects.get(user=marketer).lead_columns == [
        "custom:region",
        "job_title",
        "company",
    ]
    page = client.get("/leads/")
    assert _headers(page) == ["Select", "Name", "Email", "Region", "Job title", "Company"]
    assert re.findall(rb'<td data-label="[^"]+">([^<]*)</td>', page.content)[1:] == [
        b"Nord",
        b"CTO",
        b"Acme",
    ]


def test_arrows_move_a_column_and_keep_the_panel_open(client, marketer):
    LeadFactory.create(email="a@x.example")
    client.force_login(marketer)
    order = ["company", "stage", "score"]

    _save(client, order, order, move="score:up", query="grade=hot")
    assert UserPreference.objects.get(user=marketer).lead_columns == ["company", "score", "stage"]
    response = client.post(
        "/leads/columns/",
        {"order": order, "column": order, "move": "company:down", "query": "grade=hot"},
    )
    assert response["Location"] == "/leads/?grade=hot&columns=open#columns"
    assert UserPreference.objects.get(user=marketer).lead_columns == ["stage", "company", "score"]
    # The first one cannot go further up.
    _save(client, order, order, move="company:up")
    assert UserPreference.objects.get(user=marketer).lead_columns == order
    assert b'id="columns" open' in client.get("/leads/?columns=open").content


def test_a_removed_custom_field_in_the_preference_is_ignored(client, marketer):
    UserPreference.objects.create(
        user=marketer, lead_columns=["custom:gone", "owner", 7, "company"]
    )
    LeadFactory.create(email="a@x.example")
    client.force_login(marketer)

    page = client.get("/leads/")
    assert page.status_code == 200
    assert _headers(page)[3:] == ["Owner", "Company"]
    assert client.get("/leads/export.csv").getvalue().decode().splitlines()[0] == (
        "Name,Email,Owner,Company"
    )


def test_the_default_columns_until_the_user_chooses(client, sales):
    client.force_login(sales)
    LeadFactory.create(email="a@x.example", owner=sales)

    assert _headers(client.get("/leads/"))[3:] == [
        "Company",
        "Stage",
        "Score",
        "Owner",
        "Last activity",
    ]


@pytest.fixture
def many(marketer):
    """55 leads (more than a page) whose values tie in groups, some activity null."""
    leads = []
    for i in range(PAGE_SIZE + 5):
        lead = LeadFactory.create(
            email=f"l{i}@x.example",
            score=i % 4,
            company_name="bca"[i % 3],
            job_title=f"t{i % 2}",
            last_activity_at=None if i % 6 == 0 else T0 + dt.timedelta(days=i % 3),
        )
        Lead.objects.filter(pk=lead.pk).update(created_at=T0 + dt.timedelta(hours=i % 5))
        leads.append(lead.pk)
    return leads


SORT_FIELDS = {
    "created": "created_at",
    "score": "score",
    "activity": "last_activity_at",
    "company": "company_name",
    "job_title": "job_title",
}


def _expected(field: str, ascending: bool) -> list[int]:
    rows = list(Lead.objects.values_list(field, "id"))
    present = sorted((row for row in rows if row[0] is not None), reverse=not ascending)
    nulls = sorted((row for row in rows if row[0] is None), reverse=not ascending)
    return [pk for _value, pk in present + nulls]


@pytest.mark.parametrize("sort", list(SORT_FIELDS))
def test_each_sort_both_ways_across_pages(client, marketer, many, sort):
    client.force_login(marketer)
    _save(
        client,
        ["job_title", "company", "score", "last_activity", "created"],
        ["job_title", "company", "score", "last_activity", "created"],
    )

    for ascending in (False, True):
        url = f"/leads/?sort={sort}{':asc' if ascending else ''}"
        ids, pages = _all_pages(client, url)
        assert pages == 2
        assert ids == _expected(SORT_FIELDS[sort], ascending), (sort, ascending)


def test_points_sorts_break_ties_by_id_both_ways(client, marketer, many):
    client.force_login(marketer)
    for sort in ("fit", "engagement"):
        assert _all_pages(client, f"/leads/?sort={sort}")[0] == sorted(many, reverse=True)
        assert _all_pages(client, f"/leads/?sort={sort}:asc")[0] == sorted(many)


def test_a_header_sorts_by_its_column_and_again_the_other_way(client, marketer):
    LeadFactory.create(email="a@x.example", stage="lead")
    client.force_login(marketer)
    _save(client, ["company", "stage"], ["company", "stage"])

    page = client.get("/leads/?grade=&stage=lead").content.decode()
    assert (
        '<th scope="col" data-column="company" aria-sort="none"><a class="lf-sort '
        'link-body-emphasis text-decoration-none text-nowrap" '
        'href="/leads/?stage=lead&amp;sort=company"'
    ) in page
    # A column that does not sort has no link and no aria-sort.
    assert '<th scope="col" data-column="stage">Stage</th>' in page

    by_company = client.get("/leads/?stage=lead&sort=company").content.decode()
    assert 'aria-sort="descending"' in by_company
    assert 'href="/leads/?stage=lead&amp;sort=company%3Aasc"' in by_company
    assert '<span aria-hidden="true">▼</span>' in by_company
    assert '<option value="company" selected>Company, highest first</option>' in by_company

    upwards = client.get("/leads/?stage=lead&sort=company:asc").content.decode()
    assert 'aria-sort="ascending"' in upwards
    assert 'href="/leads/?stage=lead&amp;sort=company"' in upwards
    assert '<span aria-hidden="true">▲</span>' in upwards


def test_an_ascending_sort_composes_with_a_filter(client, marketer):
    low = LeadFactory.create(email="low@x.example", score=1, grade="hot")
    high = LeadFactory.create(email="high@x.example", score=9, grade="hot")
    LeadFactory.create(email="cold@x.example", score=5, grade="cold")
    client.force_login(marketer)

    page = client.get("/leads/?grade=hot&sort=score:asc")
    assert _ids(page) == [low.pk, high.pk]
    # The sort select (a phone's way to sort) offers it too.
    assert b'<option value="score:asc" selected>Score, lowest first</option>' in page.content
    csv = client.get("/leads/export.csv?grade=hot&sort=score:asc").getvalue().decode()
    assert [row.split(",")[1] for row in csv.splitlines()[1:]] == [
        "low@x.example",
        "high@x.example",
    ]


def test_query_count_with_every_column_chosen(client, marketer, django_assert_max_num_queries):
    FieldDefinitionFactory.create(key="region", label="Region", type="text")
    everything = [
        "job_title",
        "company",
        "score",
        "fit_points",
        "engagement_points",
        "fit_grade",
        "engagement_grade",
        "stage",
        "owner",
        "source",
        "last_activity",
        "created",
        "custom:region",
    ]
    UserPreference.objects.create(user=marketer, lead_columns=everything)
    client.force_login(marketer)
    LeadFactory.create_batch(3, owner=marketer)
    with django_assert_max_num_queries(11):
        small = client.get("/leads/?sort=fit:asc")
    LeadFactory.create_batch(60, owner=marketer)
    with django_assert_max_num_queries(11):
        large = client.get("/leads/?sort=fit:asc")

    assert len(_ids(small)) == 3
    assert len(_ids(large)) == PAGE_SIZE
    assert len(_headers(large)) == 3 + len(everything)

"""Fit and engagement grades on the leads list and the API (one filter, two
adapters), and "great fit, not yet engaged"."""

from __future__ import annotations

import re

import pytest

from scoring.models import ScoreCategory
from tests.factories import LeadFactory, LeadScoreFactory

pytestmark = pytest.mark.django_db


def _lead(fit_grade, engagement_grade, *, fit_points=0, stage="lead", **fields):
    lead = LeadFactory.create(
        fit_grade=fit_grade, engagement_grade=engagement_grade, stage=stage, **fields
    )
    if fit_points:
        LeadScoreFactory.create(
            lead=lead, category=ScoreCategory.objects.get(key="fit"), score=fit_points
        )
    return lead


def _ids(response) -> list[int]:
    return [int(i) for i in re.findall(rb'name="bulk-lead" value="(\d+)"', response.content)]


def test_the_api_shows_both_axes_and_the_rating(marketer_api):
    lead = _lead("A", "3")

    body = marketer_api.get(f"/api/v1/leads/{lead.pk}/").json()

    assert (body["fit_grade"], body["engagement_grade"], body["rating"]) == ("A", "3", "A3")


def test_the_api_does_not_write_grades(marketer_api):
    lead = _lead("D", "4")

    marketer_api.patch(
        f"/api/v1/leads/{lead.pk}/", {"fit_grade": "A", "rating": "A1"}, format="json"
    )

    lead.refresh_from_db()
    assert lead.rating == "D4"


def test_the_api_filters_by_fit_and_engagement(marketer_api, django_assert_max_num_queries):
    a1 = _lead("A", "1")
    a3 = _lead("A", "3")
    _lead("B", "1")
    for _ in range(20):
        _lead("C", "2")

    with django_assert_max_num_queries(6):
        fit_a = marketer_api.get("/api/v1/leads/?fit_grade=A&page_size=50").json()
    both = marketer_api.get("/api/v1/leads/?fit_grade=A&engagement_grade=3").json()
    bad = marketer_api.get("/api/v1/leads/?fit_grade=E")

    assert sorted(r["id"] for r in fit_a["results"]) == [a1.pk, a3.pk]
    assert [r["id"] for r in both["results"]] == [a3.pk]
    assert bad.status_code == 400


def test_the_list_filters_by_fit_and_engagement(client, marketer):
    client.force_login(marketer)
    a1 = _lead("A", "1")
    a3 = _lead("A", "3")
    _lead("B", "3")

    fit_a = client.get("/leads/?fit_grade=A")
    both = client.get("/leads/?fit_grade=A&engagement_grade=3")

    assert _ids(fit_a) == [a3.pk, a1.pk]
    assert _ids(both) == [a3.pk]
    assert b'data-rating="A3"' in both.content


def test_great_fit_not_yet_engaged_sorted_by_fit_points(
    client, sales, django_assert_max_num_queries
):
    client.force_login(sales)
    good = _lead("B", "4", fit_points=30)
    best = _lead("A", "3", fit_points=55)
    better = _lead("A", "4", fit_points=45)
    _lead("A", "2", fit_points=60)  # engaged already
    _lead("C", "4", fit_points=12)  # not a great fit
    _lead("A", "4", fit_points=70, stage="customer")
    _lead("A", "3", fit_points=70, stage="disqualified")
    _lead("A", "4", fit_points=70, stage="lost")
    _lead("B", "3", fit_points=65, stage="opportunity")  # already being worked

    with django_assert_max_num_queries(9):
        page = client.get("/leads/?view=great_fit")

    assert _ids(page) == [best.pk, better.pk, good.pk]
    assert b'id="great-fit-help"' in page.content
    assert b"fit A or B" in page.content
    assert b"opportunity stage" in page.content
    # The view sets fit and engagement: the form does not claim "Any".
    assert b'<option value="">Any fit</option>' not in page.content
    assert b'<option value="">Any engagement</option>' not in page.content
    assert b"<option>A or B</option>" in page.content


def test_great_fit_pages_by_fit_points(client, sales):
    client.force_login(sales)
    points = {_lead("A", "4", fit_points=40 + n % 7).pk: 40 + n % 7 for n in range(60)}

    first = client.get("/leads/?view=great_fit")
    more = re.search(rb'id="more-row".*?hx-get="([^"]+)"', first.content, re.S)
    assert more is not None
    rest = client.get(more.group(1).decode().replace("&amp;", "&"), HTTP_HX_REQUEST="true")

    assert len(_ids(first)) == 50
    assert _ids(first) + _ids(rest) == sorted(points, key=lambda pk: (-points[pk], -pk))


def test_the_dashboard_links_to_great_fit(client, sales):
    client.force_login(sales)

    page = client.get("/")

    assert b'id="dashboard-great-fit"' in page.content
    assert b"/leads/?view=great_fit" in page.content


def test_the_badge_shows_beside_the_grade_on_the_profile_and_the_hot_list(client, marketer):
    client.force_login(marketer)
    lead = _lead("B", "2", grade="hot", score=70)

    profile = client.get(f"/leads/{lead.pk}/")
    home = client.get("/")

    assert b'data-rating="B2"' in profile.content
    assert b'data-rating="B2"' in home.content
    assert b'title="Fit B: good fit; engagement 2: engaged"' in profile.content

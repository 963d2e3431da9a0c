"""The scoring settings and categories through the API: the same rules as the
page (``scoring.rules``), a regrade when a grade setting moved, the review log."""

import pytest

from leads.models import Lead
from scoring.models import ReviewLogEntry, ScoreCategory
from tests.factories import LeadFactory, LeadScoreFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/scoring/settings/"


def test_the_settings_show_the_axes_and_the_hot_rule(admin_api):
    body = admin_api.get(URL).json()

    assert {key: body[key] for key in ("hot_rule", "hot_min_fit", "fit_a", "engagement_3")} == {
        "hot_rule": "total",
        "hot_min_fit": "B",
        "fit_a": 40,
        "engagement_3": 10,
    }
    assert body["total_cap"] is None


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"fit_b": 45}, {"fit_a": ["Fit A must be above fit B."]}),
        ({"engagement_3": 30}, {"engagement_2": ["Engagement 2 must be above engagement 3."]}),
        ({"hot_min_fit": "E"}, {"hot_min_fit": ['"E" is not a valid choice.']}),
        ({"total_cap": 0}, {"total_cap": ["A cap is at least 1 point; leave it blank for none."]}),
    ],
)
def test_bad_settings_are_refused(admin_api, change, errors):
    response = admin_api.patch(URL, change, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == errors
    assert not ReviewLogEntry.objects.exists()


def test_a_new_fit_threshold_regrades_and_is_logged(admin_api, admin_user):
    lead = LeadFactory.create()
    LeadScoreFactory.create(lead=lead, category=ScoreCategory.objects.get(key="fit"), score=30)

    response = admin_api.patch(URL, {"fit_a": 30}, format="json")

    assert response.json()["fit_a"] == 30
    assert Lead.objects.get(pk=lead.pk).rating == "A4"
    entry = ReviewLogEntry.objects.get()
    assert (entry.user, entry.subject, entry.summary, entry.changes) == (
        admin_user,
        "settings",
        "Fit A from: 40 → 30",
        {"fit_a": [40, 30]},
    )


def test_category_decay_through_the_api(admin_api, admin_user):
    category = ScoreCategory.objects.get(key="engagement")
    url = f"/api/v1/score-categories/{category.pk}/"

    bad = admin_api.patch(url, {"decay_mode": "expire"}, format="json")
    ok = admin_api.patch(url, {"decay_mode": "expire", "decay_days": 90}, format="json")

    assert bad.json()["error"]["fields"] == {
        "decay_days": ["Enter the number of days for this kind of decay."]
    }
    assert (ok.json()["decay_mode"], ok.json()["decay_days"]) == ("expire", 90)
    entry = ReviewLogEntry.objects.get()
    assert (entry.subject, entry.user, entry.changes) == (
        "category",
        admin_user,
        {"decay_mode": ["none", "expire"], "decay_days": [None, 90]},
    )


def test_a_cap_below_the_top_grade_is_refused_both_ways(admin_api):
    fit = ScoreCategory.objects.get(key="fit")
    url = f"/api/v1/score-categories/{fit.pk}/"

    low_cap = admin_api.patch(url, {"cap": 30}, format="json")
    ok_cap = admin_api.patch(url, {"cap": 50}, format="json")
    high_fit_a = admin_api.patch(URL, {"fit_a": 55}, format="json")

    assert low_cap.json()["error"]["fields"] == {
        "cap": [
            "With a cap of 30 points, fit A (from 40 points) can never be reached: "
            "the cap must be at least 40."
        ]
    }
    assert ok_cap.json()["cap"] == 50
    assert high_fit_a.json()["error"]["fields"] == {
        "fit_a": [
            "With a cap of 50 points, fit A (from 55 points) can never be reached: "
            "the cap must be at least 55."
        ]
    }

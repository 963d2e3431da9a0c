import pytest
from django.core.management import call_command

from leads.models import Event, Lead, Segment
from leads.services.events import events_process
from scoring.models import LeadScore, ScoreCategory, ScoreChange, ScoringSettings
from scoring.services import CategoryDeleteRefused, score_adjust, score_category_delete
from segments.services import segment_create
from tests.factories import LeadFactory, ScoreCategoryFactory

pytestmark = pytest.mark.django_db


def fit():
    return ScoreCategory.objects.get(key="fit")


def engagement():
    return ScoreCategory.objects.get(key="engagement")


def adjust(lead, delta, category, key, reason="Test"):
    return score_adjust(
        lead=lead, delta=delta, category=category, reason=reason, source="system", source_key=key
    )


def test_defaults_exist():
    assert list(ScoreCategory.objects.values_list("key", flat=True)) == ["fit", "engagement"]
    settings = ScoringSettings.objects.get()
    assert (settings.warm_threshold, settings.hot_threshold, settings.mql_threshold) == (20, 50, 50)


def test_adjust_writes_ledger_totals_and_events_once():
    lead = LeadFactory.create(stage="lead")
    first = adjust(lead, 15, fit(), "k1", "Decision maker")
    again = adjust(lead, 15, fit(), "k1", "Decision maker")
    adjust(lead, 10, engagement(), "k2", "Visited pricing")
    assert first is not None
    assert again is None
    lead.refresh_from_db()
    assert (lead.score, lead.grade, lead.stage) == (25, "warm", "lead")
    assert dict(LeadScore.objects.filter(lead=lead).values_list("category__key", "score")) == {
        "fit": 15,
        "engagement": 10,
    }
    assert ScoreChange.objects.filter(lead=lead).count() == 2
    changes = Event.objects.filter(lead=lead, type="score.changed").order_by("id")
    assert [(e.properties["from"], e.properties["to"], e.name) for e in changes] == [
        (0, 15, "fit"),
        (15, 25, "engagement"),
    ]
    grades = Event.objects.filter(lead=lead, type="grade.changed")
    assert [(e.properties["from"], e.properties["to"]) for e in grades] == [("cold", "warm")]


def test_reaching_mql_moves_the_stage_forward_only():
    lead = LeadFactory.create(stage="subscriber")
    adjust(lead, 60, fit(), "k1")
    lead.refresh_from_db()
    assert (lead.grade, lead.stage) == ("hot", "mql")
    customer = LeadFactory.create(stage="customer")
    adjust(customer, 60, fit(), "k2")
    customer.refresh_from_db()
    assert customer.stage == "customer"


def test_scoring_verify(capsys):
    lead = LeadFactory.create()
    adjust(lead, 5, fit(), "k1")
    call_command("scoring_verify")
    assert capsys.readouterr().out.strip() == "Scores match the ledger."
    Lead.objects.filter(pk=lead.pk).update(score=6)
    with pytest.raises(SystemExit) as exited:
        call_command("scoring_verify")
    assert exited.value.code == 1
    assert f"lead {lead.pk}: score is 6, ledger says 5" in capsys.readouterr().err


def test_hot_leads_segment_follows_the_score(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        hot = segment_create(
            name="Hot leads", conditions={"all": [{"field": "grade", "op": "is", "value": "hot"}]}
        )
        fit_heavy = segment_create(
            name="Fit 30+", conditions={"all": [{"field": "score.fit", "op": "gte", "value": 30}]}
        )
    lead = LeadFactory.create(email="h@x.example")
    adjust(lead, 55, fit(), "k1")
    pending = Event.objects.filter(processed_at__isnull=True).values_list("id", flat=True)
    events_process(event_ids=list(pending))
    members = set(
        Segment.objects.filter(
            memberships__lead=lead, memberships__left_at__isnull=True
        ).values_list("name", flat=True)
    )
    assert members == {"Hot leads", "Fit 30+"}
    assert fit_heavy.pk
    assert hot.pk


def test_score_api(marketer_api, sales_api, sales, admin_api):
    lead = LeadFactory.create(owner=sales)
    response = marketer_api.post(
        f"/api/v1/leads/{lead.pk}/score/adjust/",
        {"delta": 10, "category": "fit", "reason": "Met at the fair"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["created_by"] == "marketer-t"
    sales_api.post(
        f"/api/v1/leads/{lead.pk}/score/adjust/",
        {"delta": -3, "category": "engagement", "reason": "Asked to call later"},
        format="json",
    )
    breakdown = sales_api.get(f"/api/v1/leads/{lead.pk}/score/").json()
    assert breakdown == {
        "score": 7,
        "grade": "cold",
        "categories": {"fit": 10, "engagement": -3},
        "reasons": [
            {
                "category": "fit",
                "reason": "Met at the fair",
                "source": "manual",
                "points": 10,
                "changes": 1,
                "user": "marketer-t",
                "flow": None,
                "node": None,
            },
            {
                "category": "engagement",
                "reason": "Asked to call later",
                "source": "manual",
                "points": -3,
                "changes": 1,
                "user": "sales-t",
                "flow": None,
                "node": None,
            },
        ],
    }
    ledger = marketer_api.get(f"/api/v1/leads/{lead.pk}/score/changes/").json()["results"]
    assert [c["delta"] for c in ledger] == [-3, 10]  # newest first
    bad = marketer_api.post(
        f"/api/v1/leads/{lead.pk}/score/adjust/", {"delta": 0, "category": "nope"}, format="json"
    )
    assert set(bad.json()["error"]["fields"]) == {"delta", "category", "reason"}
    admin_api.patch("/api/v1/scoring/settings/", {"sales_can_adjust": False}, format="json")
    refused = sales_api.post(
        f"/api/v1/leads/{lead.pk}/score/adjust/",
        {"delta": 1, "category": "fit", "reason": "x"},
        format="json",
    )
    assert refused.status_code == 403


def test_settings_change_regrades(admin_api, marketer_api):
    lead = LeadFactory.create()
    adjust(lead, 30, fit(), "k1")
    lead.refresh_from_db()
    assert lead.grade == "warm"
    assert (
        marketer_api.patch(
            "/api/v1/scoring/settings/", {"hot_threshold": 25}, format="json"
        ).status_code
        == 403
    )
    bad = admin_api.patch("/api/v1/scoring/settings/", {"hot_threshold": 10}, format="json")
    assert bad.json()["error"]["fields"] == {"hot_threshold": ["Must be above the warm threshold."]}
    ok = admin_api.patch("/api/v1/scoring/settings/", {"hot_threshold": 25}, format="json")
    assert ok.json()["hot_threshold"] == 25
    lead.refresh_from_db()
    assert lead.grade == "hot"
    regrade = Event.objects.get(lead=lead, type="grade.changed", name="hot")
    shown = ("from", "to", "score", "fit_to", "engagement_to")
    assert {key: regrade.properties[key] for key in shown} == {
        "from": "warm",
        "to": "hot",
        "score": 30,
        "fit_to": "B",
        "engagement_to": "4",
    }


def test_categories(marketer_api):
    created = marketer_api.post(
        "/api/v1/score-categories/", {"key": "product", "label": "Product use"}, format="json"
    )
    assert created.status_code == 201
    builtin = ScoreCategory.objects.get(key="fit")
    refused = marketer_api.delete(f"/api/v1/score-categories/{builtin.pk}/")
    assert refused.json()["error"]["fields"] == {"key": ["Built-in categories cannot be deleted."]}
    assert (
        marketer_api.delete(f"/api/v1/score-categories/{created.json()['id']}/").status_code == 204
    )


def test_category_delete_keeps_builtins_and_categories_with_points(
    client, admin_user, marketer_api
):
    builtin = ScoreCategory.objects.get(key="fit")
    used = ScoreCategoryFactory.create(key="product", label="Product use")
    unused = ScoreCategoryFactory.create(key="events", label="Events")
    lead = LeadFactory.create()
    score_adjust(
        lead=lead, delta=4, category=used, reason="Used it", source="manual", source_key="m:1"
    )

    with pytest.raises(CategoryDeleteRefused, match=r"^Built-in categories cannot be deleted\.$"):
        score_category_delete(category=builtin)
    with pytest.raises(CategoryDeleteRefused, match="has score changes; it cannot be deleted"):
        score_category_delete(category=used)
    refused = marketer_api.delete(f"/api/v1/score-categories/{used.pk}/")
    client.force_login(admin_user)
    page = client.post(f"/settings/scoring/categories/{used.pk}/delete/", follow=True)

    message = "This category has score changes; it cannot be deleted."
    assert refused.json()["error"]["fields"] == {"key": [message]}
    assert f'<p class="flash">{message}</p>' in page.content.decode()
    assert ScoreCategory.objects.filter(pk__in=[builtin.pk, used.pk]).count() == 2
    assert list(LeadScore.objects.filter(lead=lead).values_list("category__key", "score")) == [
        ("product", 4)
    ]
    assert ScoreChange.objects.filter(category=used).count() == 1

    score_category_delete(category=unused)
    score_category_delete(category=unused)  # gone already: nothing to do

    assert not ScoreCategory.objects.filter(pk=unused.pk).exists()

import pytest

from leads.models import Event, Lead
from tests.factories import (
    FieldDefinitionFactory,
    LeadFactory,
    SegmentFactory,
    SegmentMembershipFactory,
)

pytestmark = pytest.mark.django_db


def test_create_lead_lowercases_email_and_emits_lead_created(marketer_api):
    response = marketer_api.post(
        "/api/v1/leads/",
        {"email": "Ada@Example.COM", "first_name": "Ada", "tags": ["vip", "webinar"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert body["tags"] == ["vip", "webinar"]
    assert body["stage"] == "subscriber"
    lead = Lead.objects.get(pk=body["id"])
    types = sorted(Event.objects.filter(lead=lead).values_list("type", "name"))
    assert types == [("lead.created", ""), ("tag.added", "vip"), ("tag.added", "webinar")]


def test_email_is_unique_case_insensitively(marketer_api):
    LeadFactory.create(email="ada@example.com")
    response = marketer_api.post("/api/v1/leads/", {"email": "ADA@example.com"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid",
            "message": "The request has invalid fields.",
            "fields": {"email": ["A lead with this email already exists."]},
        }
    }


def test_lead_needs_an_identifier(marketer_api):
    response = marketer_api.post("/api/v1/leads/", {"first_name": "Nobody"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "email": ["A lead needs an email or an external id."]
    }


def test_custom_fields_are_typed_and_unknown_keys_rejected(marketer_api):
    FieldDefinitionFactory.create(key="seats", type="number")
    FieldDefinitionFactory.create(key="plan", type="choice", options=["free", "pro"])
    response = marketer_api.post(
        "/api/v1/leads/",
        {
            "email": "x@example.com",
            "custom_fields": {"seats": "many", "plan": "gold", "shoe_size": 42},
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "custom_fields.seats": ["Expected a number."],
        "custom_fields.plan": ["'gold' is not one of: free, pro."],
        "custom_fields.shoe_size": ["Unknown custom field 'shoe_size'."],
    }
    assert not Lead.objects.exists()

    response = marketer_api.post(
        "/api/v1/leads/",
        {"email": "x@example.com", "custom_fields": {"seats": 12, "plan": "pro"}},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["custom_fields"] == {"seats": 12, "plan": "pro"}


def test_patch_emits_field_changed_with_old_and_new_values(marketer_api):
    lead = LeadFactory.create(job_title="Engineer")
    response = marketer_api.patch(
        f"/api/v1/leads/{lead.pk}/", {"job_title": "CTO", "stage": "mql"}, format="json"
    )
    assert response.status_code == 200
    changes = {e.name: e.properties for e in Event.objects.filter(lead=lead, type="field.changed")}
    assert changes == {
        "job_title": {"field": "job_title", "from": "Engineer", "to": "CTO"},
        "stage": {"field": "stage", "from": "subscriber", "to": "mql"},
    }


def test_put_tags_replaces_them(marketer_api):
    lead = LeadFactory.create()
    marketer_api.patch(f"/api/v1/leads/{lead.pk}/", {"tags": ["a", "b"]}, format="json")
    response = marketer_api.patch(f"/api/v1/leads/{lead.pk}/", {"tags": ["b", "c"]}, format="json")
    assert response.json()["tags"] == ["b", "c"]
    removed = Event.objects.filter(lead=lead, type="tag.removed").values_list("name", flat=True)
    assert list(removed) == ["a"]


def test_filters_and_search(marketer_api, sales):
    LeadFactory.create(email="a@one.example", stage="mql", owner=sales, company_name="Umbrella")
    b = LeadFactory.create(email="b@two.example", stage="lead")
    marketer_api.patch(f"/api/v1/leads/{b.pk}/", {"tags": ["trial"]}, format="json")

    def emails(query):
        response = marketer_api.get(f"/api/v1/leads/?{query}")
        assert response.status_code == 200, response.json()
        return sorted(r["email"] for r in response.json()["results"])

    assert emails("email=A@ONE.example") == ["a@one.example"]
    assert emails("stage=lead") == ["b@two.example"]
    assert emails(f"owner={sales.pk}") == ["a@one.example"]
    assert emails("owner=none") == ["b@two.example"]
    assert emails("tag=trial") == ["b@two.example"]
    assert emails("q=umbrella") == ["a@one.example"]
    assert marketer_api.get("/api/v1/leads/?owner=abc").status_code == 400


def test_api_filters_match_the_leads_list_page(client, marketer, marketer_api):
    """The API and the list page share one selector: the same query gives the same leads."""
    segment = SegmentFactory.create(name="Static", static=True)
    leads = [
        LeadFactory.create(email="hot@x.example", grade="hot", score=80, stage="mql"),
        LeadFactory.create(email="warm@x.example", grade="warm", score=40, stage="mql"),
        LeadFactory.create(email="cold@x.example", grade="cold", score=5, stage="lead"),
    ]
    for lead in leads[:2]:
        SegmentMembershipFactory.create(segment=segment, lead=lead)
    client.force_login(marketer)

    def both(query):
        api = marketer_api.get(f"/api/v1/leads/?{query}")
        assert api.status_code == 200, api.json()
        page = client.get(f"/leads/?{query}").content.decode()
        on_page = sorted(str(lead.email) for lead in leads if str(lead.email) in page)
        assert sorted(r["email"] for r in api.json()["results"]) == on_page
        return on_page

    assert both("grade=hot") == ["hot@x.example"]
    assert both(f"segment={segment.pk}") == ["hot@x.example", "warm@x.example"]
    assert both("score_min=10&score_max=50") == ["warm@x.example"]
    assert both(f"segment={segment.pk}&stage=mql&score_min=41") == ["hot@x.example"]
    bad = marketer_api.get("/api/v1/leads/?grade=boiling&score_min=x")
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"grade", "score_min"}


def test_cursor_pagination_walks_every_lead_once(marketer_api):
    LeadFactory.create_batch(7)
    seen = []
    url = "/api/v1/leads/?page_size=3"
    while url:
        body = marketer_api.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(Lead.objects.values_list("id", flat=True))
    assert seen == sorted(seen, reverse=True)


def test_list_has_no_n_plus_one(marketer_api, django_assert_max_num_queries):
    for lead in LeadFactory.create_batch(30):
        marketer_api.patch(f"/api/v1/leads/{lead.pk}/", {"tags": ["x"]}, format="json")
    for lead in Lead.objects.all()[:10]:
        _points(lead, fit=5, engagement=3)
    with django_assert_max_num_queries(8):
        response = marketer_api.get("/api/v1/leads/?page_size=30&score.fit_max=100")
    assert len(response.json()["results"]) == 30


def test_sales_sees_own_and_unassigned_only(sales_api, sales, other_sales):
    mine = LeadFactory.create(owner=sales)
    free = LeadFactory.create()
    theirs = LeadFactory.create(owner=other_sales)
    ids = {r["id"] for r in sales_api.get("/api/v1/leads/").json()["results"]}
    assert ids == {mine.pk, free.pk}
    assert sales_api.get(f"/api/v1/leads/{theirs.pk}/").status_code == 404
    assert (
        sales_api.patch(f"/api/v1/leads/{mine.pk}/", {"phone": "1"}, format="json").status_code
        == 200
    )
    assert sales_api.delete(f"/api/v1/leads/{mine.pk}/").status_code == 403
    assert (
        sales_api.post("/api/v1/leads/", {"email": "n@x.example"}, format="json").status_code == 403
    )


def test_delete_lead_erases_it_and_is_for_admins(admin_api, marketer_api):
    lead = LeadFactory.create()
    assert marketer_api.delete(f"/api/v1/leads/{lead.pk}/").status_code == 403
    assert admin_api.delete(f"/api/v1/leads/{lead.pk}/").status_code == 204
    assert not Lead.objects.filter(pk=lead.pk).exists()


def test_ingest_key_cannot_read_leads_and_full_key_can(ingest_api, full_api):
    LeadFactory.create()
    response = ingest_api.get("/api/v1/leads/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert full_api.get("/api/v1/leads/").status_code == 200


def test_missing_or_bad_key_is_401(client, db):
    assert client.get("/api/v1/leads/").status_code in (401, 403)
    response = client.get("/api/v1/leads/", HTTP_AUTHORIZATION="Bearer lf_nope_nope")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_field_definitions_crud(marketer_api, sales_api):
    response = marketer_api.post(
        "/api/v1/fields/",
        {"key": "plan", "label": "Plan", "type": "choice", "options": ["free", "pro"]},
        format="json",
    )
    assert response.status_code == 201
    field_id = response.json()["id"]
    bad = marketer_api.post(
        "/api/v1/fields/", {"key": "email", "label": "E", "type": "text"}, format="json"
    )
    assert bad.json()["error"]["fields"] == {"key": ["'email' is a standard lead field."]}
    no_options = marketer_api.post(
        "/api/v1/fields/", {"key": "tier", "label": "Tier", "type": "choice"}, format="json"
    )
    assert no_options.json()["error"]["fields"] == {
        "options": ["A choice field needs a non-empty list of options."]
    }
    change_type = marketer_api.patch(f"/api/v1/fields/{field_id}/", {"type": "text"}, format="json")
    assert change_type.json()["error"]["fields"] == {"type": ["The type of a field cannot change."]}
    assert [f["key"] for f in sales_api.get("/api/v1/fields/").json()["results"]] == ["plan"]
    assert (
        sales_api.post(
            "/api/v1/fields/", {"key": "x", "label": "X", "type": "text"}, format="json"
        ).status_code
        == 403
    )


def test_sales_cannot_reassign_or_reidentify(sales_api, sales, other_sales):
    lead = LeadFactory.create(email="mine@example.com")
    response = sales_api.patch(
        f"/api/v1/leads/{lead.pk}/",
        {"owner": other_sales.pk, "email": "x@example.com", "unsubscribed": True},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "email": ["Sales reps cannot change this field."],
        "unsubscribed": ["Sales reps cannot change this field."],
        "owner": ["Sales reps can only assign a lead to themselves or to no one."],
    }
    taken = sales_api.patch(f"/api/v1/leads/{lead.pk}/", {"owner": sales.pk}, format="json")
    assert taken.json()["owner"] == sales.pk


def test_out_of_range_ids_in_filters_are_400(marketer_api):
    huge = "9" * 30
    response = marketer_api.get(f"/api/v1/leads/?owner={huge}")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"owner": ["Expected a user id or 'none'."]}
    assert marketer_api.get(f"/api/v1/events/?lead={huge}").status_code == 400


def _points(lead, **by_category):
    from scoring.models import ScoreCategory
    from scoring.services import score_adjust

    for key, points in by_category.items():
        score_adjust(
            lead=lead,
            delta=points,
            category=ScoreCategory.objects.get(key=key),
            reason="test",
            source="manual",
            source_key=f"test:{lead.pk}:{key}",
        )


def test_a_lead_carries_its_score_grade_category_scores_owner_stage_and_tags(marketer_api, sales):
    lead = LeadFactory.create(email="fit@x.example", owner=sales, stage="lead")
    lead.tags.create(name="vip")
    _points(lead, fit=30, engagement=-5)
    body = marketer_api.get(f"/api/v1/leads/{lead.pk}/").json()
    assert {
        k: body[k] for k in ("score", "grade", "category_scores", "owner", "stage", "tags")
    } == {
        "score": 25,
        "grade": "warm",
        "category_scores": {"fit": 30, "engagement": -5},
        "owner": sales.pk,
        "stage": "lead",
        "tags": ["vip"],
    }
    # Scores move through the ledger only: a write to them is ignored.
    response = marketer_api.patch(
        f"/api/v1/leads/{lead.pk}/", {"score": 99, "grade": "hot"}, format="json"
    )
    assert (response.json()["score"], response.json()["grade"]) == (25, "warm")


def test_leads_filter_by_points_in_a_category(marketer_api):
    fit = LeadFactory.create(email="fit@x.example")
    _points(fit, fit=30, engagement=2)
    engaged = LeadFactory.create(email="engaged@x.example")
    _points(engaged, fit=5, engagement=40)
    LeadFactory.create(email="none@x.example")

    def emails(query):
        response = marketer_api.get(f"/api/v1/leads/?{query}")
        assert response.status_code == 200, response.json()
        return sorted(r["email"] for r in response.json()["results"])

    assert emails("score.fit_min=20") == ["fit@x.example"]
    assert emails("score.fit_max=10") == ["engaged@x.example", "none@x.example"]
    assert emails("score.engagement_min=1&score.engagement_max=10") == ["fit@x.example"]
    assert emails("score.fit_min=5&score.engagement_min=10") == ["engaged@x.example"]
    assert emails("score.fit_min=1&score_min=40") == ["engaged@x.example"]
    bad = marketer_api.get("/api/v1/leads/?score.looks_min=1&score.fit_min=x&score.fit_avg=2")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == {
        "score.fit_min": ["Expected a whole number."],
        "score.fit_avg": ["Expected score.<category>_min or score.<category>_max."],
        "score.looks": ["No score category 'looks'."],
    }


def _walk(api, url):
    """Every page from ``url`` on, following ``next``; the ids in order and the pages."""
    seen, pages = [], []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append(body)
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    return seen, pages


def test_ordering_by_score_pages_every_lead_once_ties_by_id(marketer_api):
    # Given leads of which many share a score.
    leads = LeadFactory.create_batch(9)
    for lead, score in zip(leads, [5, 0, 0, 12, 0, 5, 30, 0, 12], strict=True):
        Lead.objects.filter(pk=lead.pk).update(score=score)
    by_score = sorted(Lead.objects.values_list("score", "id"), key=lambda r: (-r[0], -r[1]))
    # When the API is read by score, highest first, two at a time.
    seen, pages = _walk(marketer_api, "/api/v1/leads/?ordering=-score&page_size=2")
    # Then each lead comes once, by score and then by id, across the ties.
    assert seen == [pk for _, pk in by_score]
    assert [row["score"] for page in pages for row in page["results"]] == [
        30,
        12,
        12,
        5,
        5,
        0,
        0,
        0,
        0,
    ]
    assert pages[0]["previous"] is None
    # And "previous" from the third page gives the second page again.
    back = marketer_api.get(pages[2]["previous"]).json()
    assert [row["id"] for row in back["results"]] == [row["id"] for row in pages[1]["results"]]
    assert back["next"] is not None


def test_ordering_ascending_with_filters(marketer_api):
    leads = LeadFactory.create_batch(4)
    for lead, score in zip(leads, [40, 10, 20, 10], strict=True):
        Lead.objects.filter(pk=lead.pk).update(score=score)
    seen, _ = _walk(marketer_api, "/api/v1/leads/?ordering=score&score_min=15&page_size=1")
    assert seen == [leads[2].pk, leads[0].pk]
    by_created, _ = _walk(marketer_api, "/api/v1/leads/?ordering=created_at&page_size=3")
    assert by_created == sorted(
        Lead.objects.values_list("id", flat=True),
        key=lambda pk: (Lead.objects.get(pk=pk).created_at, pk),
    )


def test_unknown_ordering_and_bad_cursor_are_clear_errors(marketer_api):
    LeadFactory.create_batch(2)
    bad = marketer_api.get("/api/v1/leads/?ordering=-email")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["ordering"] == [
        "Expected one of: id, -id, score, -score, created_at, -created_at, updated_at, -updated_at."
    ]
    assert marketer_api.get("/api/v1/leads/?cursor=nonsense").status_code == 404
    # A cursor of one ordering is not read under another.
    first = marketer_api.get("/api/v1/leads/?ordering=score&page_size=1").json()
    cursor = first["next"].split("cursor=")[1].split("&")[0]
    other = marketer_api.get(f"/api/v1/leads/?ordering=created_at&cursor={cursor}")
    assert other.status_code == 404

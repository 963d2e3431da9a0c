import pytest

from tests.factories import EventFactory, LeadFactory

pytestmark = pytest.mark.django_db


def test_login_and_logout(client, marketer):
    response = client.post("/login/", {"username": "marketer-t", "password": "pw-for-tests"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/")["Location"] == "/login/?next=/"


def test_bad_password_shows_error(client, marketer):
    response = client.post("/login/", {"username": "marketer-t", "password": "wrong"})
    assert b"didn't match" in response.content


@pytest.mark.parametrize("path", ["/", "/leads/", "/leads/import/"])
def test_pages_need_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_user_without_role_is_refused(client, django_user_model):
    user = django_user_model.objects.create_user("norole", password="x")
    client.force_login(user)
    assert client.get("/leads/").status_code == 403


def test_lead_list_sales_scope_and_query_count(
    client, sales, other_sales, django_assert_max_num_queries
):
    LeadFactory.create_batch(20, owner=sales)
    hidden = LeadFactory.create(owner=other_sales, email="hidden@example.com")
    assert hidden.email is not None
    client.force_login(sales)
    # One of them reads the custom fields (the columns a user may choose).
    with django_assert_max_num_queries(9):
        response = client.get("/leads/")
    assert response.status_code == 200
    assert response.content.count(b'href="/leads/') >= 20
    assert hidden.email.encode() not in response.content
    assert client.get(f"/leads/{hidden.pk}/").status_code == 404


def test_lead_list_load_more_partial(client, marketer):
    LeadFactory.create_batch(55)
    client.force_login(marketer)
    first = client.get("/leads/")
    assert b"Load more" in first.content
    last_shown = sorted(
        int(x) for x in __import__("re").findall(rb'href="/leads/(\d+)/"', first.content)
    )[0]
    more = client.get(f"/leads/?after={last_shown}", HTTP_HX_REQUEST="true")
    assert b"<html" not in more.content
    assert more.content.count(b'href="/leads/') == 5


def test_lead_detail_shows_activity_escaped(client, marketer):
    lead = LeadFactory.create(first_name="<script>alert(1)</script>")
    EventFactory.create(
        lead=lead, type="page", name="Pricing", properties={"url": "https://x.example/pricing"}
    )
    client.force_login(marketer)
    response = client.get(f"/leads/{lead.pk}/")
    assert b"https://x.example/pricing" in response.content
    assert b"<script>alert(1)</script>" not in response.content
    assert b"&lt;script&gt;" in response.content

"""Settings pages (admins only) and the account password pages."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from leads.models import ApiKey, Event, FieldDefinition, IntegrationSettings
from leads.roles import user_role
from leads.services.api_keys import api_key_check, api_key_create
from scoring.models import ReviewLogEntry, ScoreCategory, ScoringSettings
from scoring.services import scoring_settings
from tests.factories import FieldDefinitionFactory, LeadFactory, LeadScoreFactory, UserFactory

pytestmark = pytest.mark.django_db

PAGES = [
    ("/settings/users/", "settings-section"),
    ("/settings/api-keys/", "write-keys"),
    ("/settings/fields/", "settings-section"),
    ("/settings/scoring/", "settings-section"),
    ("/settings/integrations/", "esp-sendgrid"),
    ("/settings/webhooks/", "hook-deliveries"),
]
SECTION_MARKERS = {
    "/settings/users/": "Invite a user",
    "/settings/api-keys/": "Write keys (Segment-compatible)",
    "/settings/fields/": "Add a field",
    "/settings/scoring/": "Grades and MQL",
    "/settings/integrations/": "Email provider webhooks",
    "/settings/webhooks/": "Subscribe a URL",
}


def _html(response) -> str:
    return response.content.decode()


# --- access -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [p for p, _ in PAGES])
def test_each_page_is_full_and_has_an_htmx_partial(client, admin_user, path):
    client.force_login(admin_user)

    full = client.get(path)
    partial = client.get(path, HTTP_HX_REQUEST="true")

    assert full.status_code == 200
    assert "<html" in _html(full)
    assert '<div id="settings-section">' in _html(full)
    assert SECTION_MARKERS[path] in _html(full)
    assert partial.status_code == 200
    assert "<html" not in _html(partial)
    assert 'class="nav nav-tabs' not in _html(partial)
    assert SECTION_MARKERS[path] in _html(partial)


@pytest.mark.parametrize("path", [p for p, _ in PAGES] + ["/settings/"])
@pytest.mark.parametrize("who", ["marketer", "sales"])
def test_marketers_and_sales_are_refused(client, request, path, who):
    client.force_login(request.getfixturevalue(who))

    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", [p for p, _ in PAGES])
def test_anonymous_visitors_are_sent_to_login(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_settings_root_opens_users_and_only_admins_see_the_link(client, admin_user, marketer):
    client.force_login(admin_user)
    assert client.get("/settings/")["Location"] == "/settings/users/"
    assert '<a href="/settings/">Settings</a>' in _html(client.get("/"))

    client.force_login(marketer)
    assert 'href="/settings/"' not in _html(client.get("/"))


def test_refused_posts_change_nothing(client, marketer, sales):
    client.force_login(marketer)

    response = client.post(
        "/settings/users/",
        {"username": "mallory", "email": "m@example.com", "role": "admin", "delivery": "password"},
    )

    assert response.status_code == 403
    assert not User.objects.filter(username="mallory").exists()
    assert client.post(f"/settings/users/{sales.pk}/role/", {"role": "admin"}).status_code == 403
    assert user_role(User.objects.get(pk=sales.pk)) == "sales"


# --- users ------------------------------------------------------------------------


def test_invite_with_a_one_time_password_shows_it_once(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        "/settings/users/",
        {"username": "nora", "email": "nora@example.com", "role": "sales", "delivery": "password"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/settings/users/"
    page = _html(client.get("/settings/users/"))
    password = re.search(r'<code class="fs-5 user-select-all">([^<]+)</code>', page)
    assert password is not None
    assert "nora is invited. Their one-time password is shown only now:" in page
    nora = User.objects.get(username="nora")
    assert nora.email == "nora@example.com"
    assert nora.is_active is True
    assert user_role(nora) == "sales"
    assert nora.check_password(password.group(1)) is True
    # Shown once: the next visit no longer has it.
    again = _html(client.get("/settings/users/"))
    assert password.group(1) not in again
    assert 'id="one-time-password"' not in again
    # And it works to sign in.
    client.logout()
    login = client.post("/login/", {"username": "nora", "password": password.group(1)})
    assert login["Location"] == "/"


def test_invite_with_a_reset_link_emails_them(client, admin_user, mailoutbox):
    client.force_login(admin_user)

    response = client.post(
        "/settings/users/",
        {"username": "mara", "email": "mara@example.com", "role": "marketer", "delivery": "link"},
    )

    assert response.status_code == 302
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["mara@example.com"]
    assert mail.subject == "Leadflow: set your password"
    link = re.search(r"http://testserver(/account/password-reset/[^/]+/[^/]+/)", mail.body)
    assert link is not None
    page = _html(client.get("/settings/users/"))
    assert "mara is invited: a link to set a password went to mara@example.com." in page
    assert 'id="one-time-password"' not in page
    assert user_role(User.objects.get(username="mara")) == "marketer"

    # The link sets the password.
    client.logout()
    form = client.get(link.group(1), follow=True)
    set_url = form.redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": "Tulip-Orbit-93", "new_password2": "Tulip-Orbit-93"}
    )
    assert done["Location"] == "/account/password-reset/done/"
    assert User.objects.get(username="mara").check_password("Tulip-Orbit-93")


def test_invite_validation(client, admin_user, sales):
    client.force_login(admin_user)

    response = client.post(
        "/settings/users/",
        {"username": "Sales-T", "email": "not-an-email", "role": "boss", "delivery": "password"},
    )

    page = _html(response)
    assert response.status_code == 200
    assert "This username is taken." in page
    assert "Enter a valid email address." in page
    assert "Select a valid choice. boss is not one of the available choices." in page
    assert User.objects.count() == 2


def test_change_role_with_htmx_answers_the_row(client, admin_user, sales):
    client.force_login(admin_user)

    response = client.post(
        f"/settings/users/{sales.pk}/role/", {"role": "marketer"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    html = _html(response)
    assert html.startswith(f'\n<tr id="user-{sales.pk}"')
    assert '<option value="marketer" selected>Marketer</option>' in html
    assert user_role(User.objects.get(pk=sales.pk)) == "marketer"
    assert list(User.objects.get(pk=sales.pk).groups.values_list("name", flat=True)) == ["marketer"]


def test_change_role_without_htmx_redirects(client, admin_user, sales):
    client.force_login(admin_user)

    response = client.post(f"/settings/users/{sales.pk}/role/", {"role": "admin"})

    assert response.status_code == 302
    assert response["Location"] == "/settings/users/"
    assert user_role(User.objects.get(pk=sales.pk)) == "admin"


def test_you_cannot_change_your_own_role_or_deactivate_yourself(client, admin_user):
    client.force_login(admin_user)

    role = client.post(
        f"/settings/users/{admin_user.pk}/role/", {"role": "sales"}, HTTP_HX_REQUEST="true"
    )
    active = client.post(
        f"/settings/users/{admin_user.pk}/active/", {"active": "0"}, HTTP_HX_REQUEST="true"
    )

    assert role.status_code == 422
    assert "You cannot change your own role." in _html(role)
    assert active.status_code == 422
    assert "You cannot deactivate yourself." in _html(active)
    me = User.objects.get(pk=admin_user.pk)
    assert me.is_active is True
    assert user_role(me) == "admin"
    plain = client.post(f"/settings/users/{admin_user.pk}/active/", {"active": "0"}, follow=True)
    assert '<p class="flash">You cannot deactivate yourself.</p>' in _html(plain)


def test_deactivate_and_reactivate(client, admin_user, sales):
    client.force_login(admin_user)

    off = client.post(
        f"/settings/users/{sales.pk}/active/", {"active": "0"}, HTTP_HX_REQUEST="true"
    )

    assert off.status_code == 200
    assert 'data-active="no"' in _html(off)
    assert ">Reactivate</button>" in _html(off)
    assert User.objects.get(pk=sales.pk).is_active is False
    assert client.login(username="sales-t", password="pw-for-tests") is False

    on = client.post(f"/settings/users/{sales.pk}/active/", {"active": "1"}, HTTP_HX_REQUEST="true")

    assert 'data-active="yes"' in _html(on)
    assert User.objects.get(pk=sales.pk).is_active is True


def test_user_list_shows_role_and_last_login_in_bounded_queries(
    client, admin_user, django_assert_max_num_queries
):
    for n in range(15):
        UserFactory.create(username=f"rep{n:02d}", role="sales" if n % 2 else "marketer")
    client.force_login(admin_user)

    with django_assert_max_num_queries(8):
        response = client.get("/settings/users/")

    html = _html(response)
    assert html.count('<tr id="user-') == 16
    # Seven reps, and the invite form's role, which starts at the least powerful.
    assert html.count('<option value="sales" selected>Sales</option>') == 8
    assert html.count('<option value="marketer" selected>Marketer</option>') == 8
    assert html.count(">Never</td>") == 15


# --- API keys ---------------------------------------------------------------------


def test_a_new_api_key_is_shown_once_then_only_its_prefix(client, admin_user):
    client.force_login(admin_user)

    response = client.post("/settings/api-keys/", {"name": "website", "scope": "ingest"})

    assert response.status_code == 302
    assert response["Location"] == "/settings/api-keys/"
    page = _html(client.get("/settings/api-keys/"))
    shown = re.search(r'<code class="fs-6 user-select-all">(lf_[^<]+)</code>', page)
    assert shown is not None
    key = shown.group(1)
    row = ApiKey.objects.get()
    assert (row.name, row.scope, row.created_by_id) == ("website", "ingest", admin_user.pk)
    assert api_key_check(key) == row
    # The samples carry the new key this once.
    assert f'analytics.write_key = "{key}"' in page

    again = _html(client.get("/settings/api-keys/"))
    assert key not in again
    assert f"<code>lf_{row.prefix}_…</code>" in again
    assert 'analytics.write_key = "YOUR_WRITE_KEY"' in again


def test_api_key_validation(client, admin_user):
    client.force_login(admin_user)

    response = client.post("/settings/api-keys/", {"name": "", "scope": "root"})

    assert response.status_code == 200
    assert "This field is required." in _html(response)
    assert "Select a valid choice. root is not one of the available choices." in _html(response)
    assert ApiKey.objects.count() == 0


def test_revoke_with_htmx(client, admin_user):
    row, key = api_key_create(name="old", scope="full")
    client.force_login(admin_user)

    response = client.post(f"/settings/api-keys/{row.pk}/revoke/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert _html(response).startswith(f'\n<tr id="api-key-{row.pk}">')
    assert 'data-revoked="yes"' in _html(response)
    assert ">Revoke</button>" not in _html(response)
    assert ApiKey.objects.get(pk=row.pk).revoked_at is not None
    assert api_key_check(key) is None


def test_write_key_sample_names_the_real_host(client, admin_user, settings):
    settings.ALLOWED_HOSTS = ["track.acme.example"]
    client.force_login(admin_user)

    page = _html(client.get("/settings/api-keys/", HTTP_HOST="track.acme.example"))

    assert '<code id="segment-endpoint">http://track.acme.example/v1/batch</code>' in page
    assert 'analytics.host = "http://track.acme.example"' in page
    assert 'host: "http://track.acme.example", path: "/v1/batch"' in page


def test_api_key_list_query_count(client, admin_user, django_assert_max_num_queries):
    for n in range(12):
        api_key_create(name=f"key {n}", scope="ingest", created_by=admin_user)
    client.force_login(admin_user)

    with django_assert_max_num_queries(7):
        response = client.get("/settings/api-keys/")

    assert _html(response).count('<tr id="api-key-') == 12


# --- custom fields ----------------------------------------------------------------


def test_create_a_custom_field(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        "/settings/fields/",
        {"key": "plan_tier", "label": "Plan tier", "type": "choice", "options_text": "a\nb\n\n c "},
    )

    assert response.status_code == 302
    field = FieldDefinition.objects.get()
    assert (field.key, field.label, field.type, field.options) == (
        "plan_tier",
        "Plan tier",
        "choice",
        ["a", "b", "c"],
    )
    page = _html(client.get("/settings/fields/"))
    assert "<code>plan_tier</code>" in page
    assert "<td>a, b, c</td>" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key": "Plan-Tier", "type": "text"}, "Start with a letter; use lower-case letters"),
        ({"key": "job_title", "type": "text"}, "This is a standard lead field."),
        ({"key": "seats", "type": "choice"}, "A choice field needs options, one per line"),
        ({"key": "seats", "type": "number", "options_text": "x"}, "Only choice fields have"),
        ({"key": "budget", "type": "text"}, "A field with this key exists."),
    ],
)
def test_custom_field_validation(client, admin_user, data, message):
    FieldDefinitionFactory.create(key="budget", type="number")
    client.force_login(admin_user)

    response = client.post("/settings/fields/", {"label": "Something", **data})

    assert response.status_code == 200
    assert message in _html(response)
    assert FieldDefinition.objects.count() == 1


def test_edit_keeps_key_and_type_and_delete_removes(client, admin_user):
    field = FieldDefinitionFactory.create(key="tier", type="choice", options=["gold"])
    client.force_login(admin_user)

    form = _html(client.get(f"/settings/fields/{field.pk}/"))
    assert 'name="type"' not in form
    assert 'name="key"' not in form
    saved = client.post(
        f"/settings/fields/{field.pk}/",
        {"label": "Customer tier", "options_text": "gold\nsilver", "type": "text", "key": "x"},
    )

    assert saved["Location"] == "/settings/fields/"
    field.refresh_from_db()
    assert (field.key, field.label, field.type, field.options) == (
        "tier",
        "Customer tier",
        "choice",
        ["gold", "silver"],
    )

    client.post(f"/settings/fields/{field.pk}/delete/")

    assert FieldDefinition.objects.count() == 0


def test_field_list_query_count(client, admin_user, django_assert_max_num_queries):
    for n in range(10):
        FieldDefinitionFactory.create(key=f"f{n}", label=f"F{n}")
    client.force_login(admin_user)

    with django_assert_max_num_queries(6):
        response = client.get("/settings/fields/")

    assert _html(response).count('<tr id="field-') == 10


# --- scoring ----------------------------------------------------------------------


def _thresholds(**values):
    data = {
        "warm_threshold": 20,
        "hot_threshold": 50,
        "mql_threshold": 50,
        "hot_rule": "total",
        "hot_min_fit": "B",
        "hot_min_engagement": "2",
        "fit_a": 40,
        "fit_b": 25,
        "fit_c": 10,
        "engagement_1": 60,
        "engagement_2": 30,
        "engagement_3": 10,
        "total_cap": "",
    }
    data.update(values)
    return data


def test_thresholds_must_have_hot_above_warm(client, admin_user):
    client.force_login(admin_user)

    response = client.post("/settings/scoring/", _thresholds(warm_threshold=60, hot_threshold=60))

    assert response.status_code == 200
    assert "Hot must be above warm." in _html(response)
    current = scoring_settings()
    assert (current.warm_threshold, current.hot_threshold) == (20, 50)


def test_moving_thresholds_regrades_leads(client, admin_user):
    warm = LeadFactory.create(score=30, grade="warm")
    cold = LeadFactory.create(score=5, grade="cold")
    client.force_login(admin_user)

    response = client.post(
        "/settings/scoring/",
        _thresholds(warm_threshold=10, hot_threshold=25, mql_threshold=40, sales_can_adjust="on"),
    )

    assert response["Location"] == "/settings/scoring/"
    warm.refresh_from_db()
    cold.refresh_from_db()
    assert (warm.grade, cold.grade) == ("hot", "cold")
    current = ScoringSettings.objects.get()
    assert (
        current.warm_threshold,
        current.hot_threshold,
        current.mql_threshold,
        current.mql_moves_stage,
        current.sales_can_adjust,
    ) == (10, 25, 40, False, True)
    assert list(
        Event.objects.filter(type="grade.changed").values_list("lead_id", "name", "properties")
    ) == [
        (
            warm.pk,
            "hot",
            {
                "from": "warm",
                "to": "hot",
                "score": 30,
                "fit_from": "D",
                "fit_to": "D",
                "engagement_from": "4",
                "engagement_to": "4",
            },
        )
    ]
    assert '<p class="flash">Scoring settings are saved.</p>' in _html(
        client.get("/settings/scoring/")
    )


def test_categories_add_rename_and_builtins_stay(client, admin_user):
    client.force_login(admin_user)
    builtin = ScoreCategory.objects.get(key="fit")

    client.post("/settings/scoring/categories/", {"key": "product_usage", "label": "Usage"})
    added = ScoreCategory.objects.get(key="product_usage")
    client.post(f"/settings/scoring/categories/{added.pk}/rename/", {"label": "Product usage"})
    client.post(f"/settings/scoring/categories/{builtin.pk}/rename/", {"label": "Who they are"})
    refused = client.post(f"/settings/scoring/categories/{builtin.pk}/delete/", follow=True)
    bad = client.post("/settings/scoring/categories/", {"key": "fit", "label": "Again"})

    assert ScoreCategory.objects.get(pk=added.pk).label == "Product usage"
    assert ScoreCategory.objects.get(pk=builtin.pk).label == "Who they are"
    assert '<p class="flash">Built-in categories cannot be deleted.</p>' in _html(refused)
    assert "Score category with this Key already exists." in _html(bad)

    client.post(f"/settings/scoring/categories/{added.pk}/delete/")

    assert not ScoreCategory.objects.filter(pk=added.pk).exists()
    assert ScoreCategory.objects.filter(pk=builtin.pk).exists()


# --- integrations -----------------------------------------------------------------


def test_integrations_show_webhook_urls_with_credentials(client, admin_user, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret"}
    settings.ALLOWED_HOSTS = ["app.acme.example"]
    client.force_login(admin_user)

    page = _html(client.get("/settings/integrations/", HTTP_HOST="app.acme.example"))

    for esp in ("sendgrid", "mailgun", "postmark", "brevo"):
        url = f"http://hook:s3cret@app.acme.example/anymail/{esp}/tracking/"
        assert f'<code class="user-select-all d-block mb-1">{url}</code>' in page
    assert "In SendGrid, open Settings → Mail Settings → Event Webhook." in page
    assert "Set MAILGUN_WEBHOOK_SIGNING_KEY to the HTTP webhook signing key" in page


def test_slack_webhook_is_saved_and_validated(client, admin_user):
    client.force_login(admin_user)

    bad = client.post("/settings/integrations/", {"slack_webhook_url": "http://hooks.example/x"})
    good = client.post(
        "/settings/integrations/", {"slack_webhook_url": "https://hooks.slack.com/services/T/B/X"}
    )

    assert "Use an https:// URL." in _html(bad)
    assert good["Location"] == "/settings/integrations/"
    assert IntegrationSettings.objects.get().slack_webhook_url == (
        "https://hooks.slack.com/services/T/B/X"
    )
    # A credential: never shown again, only that it is set.
    page = _html(client.get("/settings/integrations/"))
    assert "services/T/B/X" not in page
    assert "Set. It is never shown again; leave this blank to keep it." in page


def test_slack_webhook_is_kept_when_left_blank_and_removed_on_purpose(client, admin_user):
    client.force_login(admin_user)
    url = "https://hooks.slack.com/services/T/B/X"
    client.post("/settings/integrations/", {"slack_webhook_url": url})

    client.post("/settings/integrations/", {"slack_webhook_url": ""})
    kept = IntegrationSettings.objects.get().slack_webhook_url
    client.post("/settings/integrations/", {"slack_webhook_url": "", "remove": "on"})
    removed = IntegrationSettings.objects.get().slack_webhook_url

    assert (kept, removed) == (url, "")
    assert "Not set." in _html(client.get("/settings/integrations/"))


def test_slack_webhook_to_a_local_address_is_refused(client, admin_user):
    client.force_login(admin_user)

    response = client.post(
        "/settings/integrations/", {"slack_webhook_url": "https://169.254.169.254/latest/"}
    )

    assert response.status_code == 200
    assert (
        "169.254.169.254 is a local or private address (169.254.169.254); Leadflow does not "
        "send there unless an administrator allows it in OUTBOUND_ALLOWED_HOSTS."
    ) in _html(response)
    assert IntegrationSettings.objects.get().slack_webhook_url == ""


# --- account ----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin_user", "marketer", "sales"])
def test_every_role_changes_their_password(client, request, who):
    user = request.getfixturevalue(who)
    client.force_login(user)
    assert client.get("/account/password/").status_code == 200

    wrong = client.post(
        "/account/password/",
        {"old_password": "nope", "new_password1": "Maple-Rocket-41", "new_password2": "x"},
    )
    response = client.post(
        "/account/password/",
        {
            "old_password": "pw-for-tests",
            "new_password1": "Maple-Rocket-41",
            "new_password2": "Maple-Rocket-41",
        },
    )

    assert wrong.status_code == 200
    assert "Your old password was entered incorrectly." in _html(wrong)
    assert response["Location"] == "/account/password/done/"
    assert User.objects.get(pk=user.pk).check_password("Maple-Rocket-41")
    assert client.get("/account/password/done/").status_code == 200


def test_password_change_needs_login(client):
    response = client.get("/account/password/")

    assert response["Location"] == "/login/?next=/account/password/"


def test_password_reset_flow(client, sales, mailoutbox):
    page = client.get("/account/password-reset/")
    assert page.status_code == 200

    sent = client.post("/account/password-reset/", {"email": "sales-t@example.com"})
    unknown = client.post("/account/password-reset/", {"email": "nobody@example.com"})

    assert sent["Location"] == "/account/password-reset/sent/"
    assert unknown["Location"] == "/account/password-reset/sent/"
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["sales-t@example.com"]
    link = re.search(r"http://testserver(/account/password-reset/\S+/)", mailoutbox[0].body)
    assert link is not None
    form = client.get(link.group(1), follow=True)
    set_url = form.redirect_chain[-1][0]
    assert set_url.endswith("/set-password/")
    done = client.post(
        set_url, {"new_password1": "Harbor-Lime-77", "new_password2": "Harbor-Lime-77"}
    )
    assert done["Location"] == "/account/password-reset/done/"
    assert "Your password is set." in _html(client.get("/account/password-reset/done/"))
    assert client.login(username="sales-t", password="Harbor-Lime-77") is True
    # The link works once.
    client.logout()
    reused = client.get(link.group(1), follow=True)
    assert 'id="reset-invalid"' in _html(reused)


def test_login_page_links_to_password_reset_and_pages_to_password_change(client, sales):
    login = _html(client.get("/login/"))
    assert '<a href="/account/password-reset/">Forgot your password?</a>' in login

    client.force_login(sales)
    assert '<a href="/account/password/" title="Account → Password">Password</a>' in _html(
        client.get("/tasks/")
    )


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        ({"fit_a": 20, "fit_b": 25}, ["Fit A must be above fit B."]),
        ({"fit_c": 25}, ["Fit B must be above fit C."]),
        ({"engagement_2": 60}, ["Engagement 1 must be above engagement 2."]),
        ({"engagement_3": 40}, ["Engagement 2 must be above engagement 3."]),
        ({"total_cap": 0}, ["A cap is at least 1 point; leave it blank for none."]),
    ],
)
def test_scoring_settings_are_validated(client, admin_user, values, errors):
    client.force_login(admin_user)

    response = client.post("/settings/scoring/", _thresholds(**values))

    assert response.status_code == 200
    page = _html(response)
    for error in errors:
        assert error in page
    assert ScoringSettings.objects.get().fit_a == 40
    assert not ReviewLogEntry.objects.exists()


def test_the_hot_rule_and_axes_regrade_and_go_into_the_review_log(client, admin_user):
    lead = LeadFactory.create(score=35, grade="warm", fit_grade="D", engagement_grade="4")
    LeadScoreFactory.create(lead=lead, category=ScoreCategory.objects.get(key="fit"), score=30)
    LeadScoreFactory.create(
        lead=lead, category=ScoreCategory.objects.get(key="engagement"), score=5
    )
    client.force_login(admin_user)

    client.post(
        "/settings/scoring/",
        _thresholds(
            hot_rule="axes",
            hot_min_fit="B",
            hot_min_engagement="4",
            total_cap=200,
            mql_moves_stage="on",
            sales_can_adjust="on",
        ),
    )

    lead.refresh_from_db()
    assert (lead.grade, lead.rating) == ("hot", "B4")
    entry = ReviewLogEntry.objects.get()
    assert (entry.user, entry.subject, entry.changes) == (
        admin_user,
        "settings",
        {"hot_rule": ["total", "axes"], "hot_min_engagement": ["2", "4"], "total_cap": [None, 200]},
    )
    assert entry.summary == (
        "Hot rule: Total score at or above the hot threshold → A minimum fit and a minimum "
        "engagement; Hot: engagement at least: 2 → 4; Cap on the total: none → 200"
    )
    page = _html(client.get("/settings/scoring/"))
    assert entry.summary in page


def test_saving_unchanged_settings_writes_no_log_and_regrades_nothing(client, admin_user):
    LeadFactory.create(score=35, grade="warm")
    client.force_login(admin_user)

    client.post("/settings/scoring/", _thresholds(mql_moves_stage="on", sales_can_adjust="on"))

    assert not ReviewLogEntry.objects.exists()
    assert not Event.objects.filter(type="grade.changed").exists()


@pytest.mark.parametrize(
    ("values", "field", "error"),
    [
        (
            {"decay_mode": "expire"},
            "decay_days",
            "Enter the number of days for this kind of decay.",
        ),
        (
            {"decay_mode": "percent", "decay_days": 30},
            "decay_percent",
            "Enter the share of points lost per period.",
        ),
        (
            {"decay_mode": "percent", "decay_days": 30, "decay_percent": 101},
            "decay_percent",
            "Enter a percentage from 1 to 100.",
        ),
        (
            {"decay_mode": "none", "cap": 0},
            "cap",
            "A cap is at least 1 point; leave it blank for none.",
        ),
        (
            {"decay_mode": "none", "cap": 50},
            "cap",
            "With a cap of 50 points, engagement 1 (from 60 points) can never be reached: "
            "the cap must be at least 60.",
        ),
    ],
)
def test_category_decay_is_validated(client, admin_user, values, field, error):
    category = ScoreCategory.objects.get(key="engagement")
    client.force_login(admin_user)
    prefix = f"category-{category.pk}"

    response = client.post(
        f"/settings/scoring/categories/{category.pk}/settings/",
        {f"{prefix}-{name}": value for name, value in values.items()},
    )

    assert response.status_code == 200
    assert error in _html(response)
    category.refresh_from_db()
    assert (category.decay_mode, category.cap) == ("none", None)


def test_category_cap_and_decay_are_saved_and_logged(client, admin_user):
    category = ScoreCategory.objects.get(key="engagement")
    client.force_login(admin_user)
    prefix = f"category-{category.pk}"

    response = client.post(
        f"/settings/scoring/categories/{category.pk}/settings/",
        {
            f"{prefix}-cap": "100",
            f"{prefix}-decay_mode": "percent",
            f"{prefix}-decay_days": "30",
            f"{prefix}-decay_percent": "20",
        },
    )

    assert response["Location"] == "/settings/scoring/"
    category.refresh_from_db()
    assert (category.cap, category.decay_mode, category.decay_days, category.decay_percent) == (
        100,
        "percent",
        30,
        20,
    )
    entry = ReviewLogEntry.objects.get()
    assert (entry.subject, entry.user, entry.summary) == (
        "category",
        admin_user,
        "Engagement: Cap: none → 100; Decay: No decay → A share of the points per period "
        "without activity; Decay days: none → 30; "
        "Decay percent: none → 20",
    )


def test_the_scoring_page_fits_a_phone(client, admin_user):
    client.force_login(admin_user)

    page = _html(client.get("/settings/scoring/"))

    # Every grid cell stacks on a phone (col-12) and spreads from "sm" up.
    cells = re.findall(r'class="(col-[^"]*)"', page.split('id="scoring-grades"')[1])
    assert cells
    assert all(cell.startswith("col-12 col-sm-") for cell in cells if "col-sm" in cell)


# --- one name per person -----------------------------------------------------------


def test_invite_with_a_full_name(client, admin_user):
    client.force_login(admin_user)

    client.post(
        "/settings/users/",
        {
            "first_name": " Nora ",
            "last_name": "Lindqvist",
            "username": "nora",
            "email": "nora@example.com",
            "role": "sales",
            "delivery": "password",
        },
    )

    nora = User.objects.get(username="nora")
    assert (nora.first_name, nora.last_name) == ("Nora", "Lindqvist")
    page = _html(client.get("/settings/users/"))
    assert f'<tr id="user-{nora.pk}"' in page
    assert '<span class="fw-semibold" data-name>Nora Lindqvist</span>' in page


def test_edit_a_users_name_shows_it_everywhere(client, admin_user, sales):
    lead = LeadFactory.create(owner=sales, first_name="Kim", last_name="Ortega")
    client.force_login(admin_user)

    response = client.post(
        f"/settings/users/{sales.pk}/name/",
        {"first_name": "Clara", "last_name": "Keller"},
        HTTP_HX_REQUEST="true",
    )
    cleared = User.objects.create_user(username="no-name", first_name="X", last_name="Y")
    client.post(f"/settings/users/{cleared.pk}/name/", {"first_name": " ", "last_name": ""})

    assert response.status_code == 200
    row = _html(response)
    assert row.startswith(f'\n<tr id="user-{sales.pk}"')
    assert '<span class="fw-semibold" data-name>Clara Keller</span>' in row
    assert 'value="Clara"' in row
    sales.refresh_from_db()
    assert (sales.first_name, sales.last_name) == ("Clara", "Keller")
    cleared.refresh_from_db()
    assert (cleared.first_name, cleared.last_name) == ("", "")
    # The same name in the owner column and filter of the leads list, and on the profile.
    leads = _html(client.get("/leads/"))
    assert re.search(rf'<option value="{sales.pk}"[^>]*>Clara Keller</option>', leads)
    assert '<td data-label="Owner">Clara Keller</td>' in leads
    profile = _html(client.get(f"/leads/{lead.pk}/"))
    assert "<strong data-owner>Clara Keller</strong>" in profile
    # And in the top bar, for the rep themselves.
    client.force_login(sales)
    assert '<span id="topbar-user">Clara Keller' in _html(client.get("/"))


def test_only_admins_edit_names(client, marketer, sales):
    client.force_login(marketer)

    response = client.post(f"/settings/users/{sales.pk}/name/", {"first_name": "Evil"})

    assert response.status_code in (302, 403)
    sales.refresh_from_db()
    assert sales.first_name == ""


@pytest.mark.parametrize(
    ("label", "key"),
    [
        ("Annual revenue (€)", "annual_revenue"),
        ("Größe des Teams", "groe_des_teams"),
        ("Café  visits", "cafe_visits"),
        ("2nd contact", "field_2nd_contact"),
        ("€€€", ""),
    ],
)
def test_a_field_key_is_made_from_its_label(label, key):
    from pages.forms.settings import field_key_from_label

    assert field_key_from_label(label) == key


def test_a_custom_field_without_a_key_takes_it_from_its_label(client, admin_user):
    FieldDefinitionFactory.create(key="budget", type="number")
    client.force_login(admin_user)

    made = client.post("/settings/fields/", {"label": "Annual revenue (€)", "type": "number"})
    taken = client.post("/settings/fields/", {"label": "Budget", "type": "text"})
    page = _html(client.get("/settings/fields/"))

    assert made.status_code == 302
    assert FieldDefinition.objects.get(label="Annual revenue (€)").key == "annual_revenue"
    assert taken.status_code == 200
    assert "A field with this key exists." in _html(taken)
    assert FieldDefinition.objects.count() == 2
    # The form asks for the label first and proposes the key from it.
    assert page.index('name="label"') < page.index('name="key"')
    assert 'data-key-from="id_label"' in page

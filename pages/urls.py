"""The pages that show every app at once: the dashboard, the lead profile, settings."""

from django.urls import path

from pages.views import consent, dashboard, lifecycle, profile, review
from pages.views import settings as settings_pages

urlpatterns = [
    path("", dashboard.home, name="home"),
    path("settings/", settings_pages.settings_home, name="settings"),
    path("settings/users/", settings_pages.user_list, name="settings-users"),
    path(
        "settings/users/<int:pk>/role/", settings_pages.user_role_change, name="settings-user-role"
    ),
    path(
        "settings/users/<int:pk>/name/", settings_pages.user_name_change, name="settings-user-name"
    ),
    path(
        "settings/users/<int:pk>/active/",
        settings_pages.user_active_change,
        name="settings-user-active",
    ),
    path("settings/api-keys/", settings_pages.api_key_list, name="settings-api-keys"),
    path(
        "settings/api-keys/<int:pk>/revoke/",
        settings_pages.api_key_revoke_view,
        name="settings-api-key-revoke",
    ),
    path("settings/fields/", settings_pages.field_list, name="settings-fields"),
    path("settings/fields/<int:pk>/", settings_pages.field_edit, name="settings-field-edit"),
    path(
        "settings/fields/<int:pk>/delete/",
        settings_pages.field_delete,
        name="settings-field-delete",
    ),
    path("settings/scoring/", settings_pages.scoring_page, name="settings-scoring"),
    path("settings/scoring/categories/", settings_pages.category_add, name="settings-category-add"),
    path(
        "settings/scoring/categories/<int:pk>/rename/",
        settings_pages.category_rename,
        name="settings-category-rename",
    ),
    path(
        "settings/scoring/categories/<int:pk>/settings/",
        settings_pages.category_settings,
        name="settings-category-settings",
    ),
    path(
        "settings/scoring/categories/<int:pk>/delete/",
        settings_pages.category_delete,
        name="settings-category-delete",
    ),
    path("settings/integrations/", settings_pages.integrations_page, name="settings-integrations"),
    path(
        "settings/integrations/identity-secret/",
        settings_pages.identity_secret_change,
        name="settings-identity-secret",
    ),
    path("settings/webhooks/", settings_pages.webhooks_page, name="settings-webhooks"),
    path(
        "settings/webhooks/<int:pk>/delete/",
        settings_pages.webhook_delete,
        name="settings-webhook-delete",
    ),
    path("settings/privacy/", settings_pages.privacy_page, name="settings-privacy"),
    path("scoring/", review.scoring_review, name="scoring-review"),
    path(
        "scoring/suggestions/accept/",
        review.scoring_suggestions_accept,
        name="scoring-suggestions-accept",
    ),
    path("scoring/presets/<str:key>/", review.scoring_preset, name="scoring-preset"),
    path("leads/<int:pk>/", profile.lead_profile, name="lead-detail"),
    path(
        "leads/<int:pk>/timeline/",
        profile.lead_profile_timeline,
        name="lead-profile-timeline",
    ),
    path(
        "leads/<int:pk>/score/reasons/",
        profile.lead_profile_score_reasons,
        name="lead-profile-score-reasons",
    ),
    path("leads/<int:pk>/update/", profile.lead_profile_update, name="lead-profile-update"),
    path("leads/<int:pk>/score/", profile.lead_profile_score, name="lead-profile-score"),
    path("leads/<int:pk>/notes/", profile.lead_profile_note, name="lead-profile-note"),
    path(
        "leads/<int:pk>/opportunities/",
        lifecycle.lead_opportunity_open,
        name="lead-opportunity-open",
    ),
    path(
        "leads/<int:pk>/opportunities/<int:opportunity_pk>/win/",
        lifecycle.lead_opportunity_win,
        name="lead-opportunity-win",
    ),
    path(
        "leads/<int:pk>/opportunities/<int:opportunity_pk>/lose/",
        lifecycle.lead_opportunity_lose,
        name="lead-opportunity-lose",
    ),
    path("leads/<int:pk>/source/", lifecycle.lead_source_update, name="lead-source-update"),
    path("leads/<int:pk>/locale/", lifecycle.lead_locale_update, name="lead-locale-update"),
    path("leads/<int:pk>/consent/", consent.lead_consent_update, name="lead-consent-update"),
]

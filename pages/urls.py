"""The pages that show every app at once: the dashboard, the lead profile, settings."""

from django.urls import path

from pages import views, views_profile, views_settings

urlpatterns = [
    path("", views.home, name="home"),
    path("settings/", views_settings.settings_home, name="settings"),
    path("settings/users/", views_settings.user_list, name="settings-users"),
    path(
        "settings/users/<int:pk>/role/", views_settings.user_role_change, name="settings-user-role"
    ),
    path(
        "settings/users/<int:pk>/active/",
        views_settings.user_active_change,
        name="settings-user-active",
    ),
    path("settings/api-keys/", views_settings.api_key_list, name="settings-api-keys"),
    path(
        "settings/api-keys/<int:pk>/revoke/",
        views_settings.api_key_revoke_view,
        name="settings-api-key-revoke",
    ),
    path("settings/fields/", views_settings.field_list, name="settings-fields"),
    path("settings/fields/<int:pk>/", views_settings.field_edit, name="settings-field-edit"),
    path(
        "settings/fields/<int:pk>/delete/",
        views_settings.field_delete,
        name="settings-field-delete",
    ),
    path("settings/scoring/", views_settings.scoring_page, name="settings-scoring"),
    path("settings/scoring/categories/", views_settings.category_add, name="settings-category-add"),
    path(
        "settings/scoring/categories/<int:pk>/rename/",
        views_settings.category_rename,
        name="settings-category-rename",
    ),
    path(
        "settings/scoring/categories/<int:pk>/delete/",
        views_settings.category_delete,
        name="settings-category-delete",
    ),
    path("settings/integrations/", views_settings.integrations_page, name="settings-integrations"),
    path(
        "settings/integrations/identity-secret/",
        views_settings.identity_secret_change,
        name="settings-identity-secret",
    ),
    path("settings/webhooks/", views_settings.webhooks_page, name="settings-webhooks"),
    path(
        "settings/webhooks/<int:pk>/delete/",
        views_settings.webhook_delete,
        name="settings-webhook-delete",
    ),
    path("settings/privacy/", views_settings.privacy_page, name="settings-privacy"),
    path("leads/<int:pk>/", views_profile.lead_profile, name="lead-detail"),
    path(
        "leads/<int:pk>/timeline/",
        views_profile.lead_profile_timeline,
        name="lead-profile-timeline",
    ),
    path("leads/<int:pk>/update/", views_profile.lead_profile_update, name="lead-profile-update"),
    path("leads/<int:pk>/score/", views_profile.lead_profile_score, name="lead-profile-score"),
    path("leads/<int:pk>/notes/", views_profile.lead_profile_note, name="lead-profile-note"),
]

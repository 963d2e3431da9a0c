from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from leads import (
    views,
    views_list,
    views_privacy,
    views_profile,
    views_segments,
    views_settings,
    views_tasks,
)
from leads.forms import LoginForm

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=LoginForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/language/", views.account_language, name="account-language"),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(template_name="settings/password_change.html"),
        name="password_change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="settings/password_change_done.html"
        ),
        name="password_change_done",
    ),
    path(
        "account/password-reset/",
        views.PasswordResetView.as_view(
            template_name="settings/password_reset.html",
            email_template_name="settings/password_reset_email.txt",
            subject_template_name="settings/password_reset_subject.txt",
        ),
        name="password_reset",
    ),
    path(
        "account/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="settings/password_reset_sent.html"),
        name="password_reset_done",
    ),
    path(
        "account/password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="settings/password_reset_confirm.html",
            success_url=reverse_lazy("password_reset_complete"),
        ),
        name="password_reset_confirm",
    ),
    path(
        "account/password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="settings/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
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
    path("leads/", views_list.lead_list, name="lead-list"),
    path("leads/bulk/", views_list.lead_bulk, name="lead-bulk"),
    path("leads/export.csv", views_list.lead_export, name="lead-export"),
    path("leads/exports/", views_list.lead_export_start_view, name="lead-export-start"),
    path("leads/jobs/<int:pk>/", views_list.lead_job_detail, name="lead-job-detail"),
    path("leads/jobs/<int:pk>/download/", views_list.lead_job_download, name="lead-job-download"),
    path("leads/<int:pk>/", views_profile.lead_profile, name="lead-detail"),
    path(
        "leads/<int:pk>/timeline/",
        views_profile.lead_profile_timeline,
        name="lead-profile-timeline",
    ),
    path("leads/<int:pk>/update/", views_profile.lead_profile_update, name="lead-profile-update"),
    path("leads/<int:pk>/score/", views_profile.lead_profile_score, name="lead-profile-score"),
    path("leads/<int:pk>/notes/", views_profile.lead_profile_note, name="lead-profile-note"),
    path("leads/<int:pk>/export.json", views_privacy.lead_export_view, name="lead-data-export"),
    path("leads/<int:pk>/erase/", views_privacy.lead_erase_view, name="lead-erase"),
    path(
        "leads/<int:pk>/segments/",
        views_segments.lead_segment_history_view,
        name="lead-segment-history",
    ),
    path("segments/", views_segments.segment_list, name="segment-list"),
    path("segments/new/", views_segments.segment_new, name="segment-new"),
    path("segments/preview/", views_segments.segment_preview_view, name="segment-preview"),
    path("segments/<int:pk>/", views_segments.segment_detail, name="segment-detail"),
    path("segments/<int:pk>/edit/", views_segments.segment_edit, name="segment-edit"),
    path("segments/<int:pk>/status/", views_segments.segment_status, name="segment-status"),
    path("segments/<int:pk>/refresh/", views_segments.segment_refresh, name="segment-refresh"),
    path(
        "segments/<int:pk>/members/add/",
        views_segments.segment_members_add,
        name="segment-members-add",
    ),
    path(
        "segments/<int:pk>/lead-search/",
        views_segments.segment_lead_search,
        name="segment-lead-search",
    ),
    path(
        "segments/<int:pk>/members/remove/",
        views_segments.segment_members_remove,
        name="segment-members-remove",
    ),
    path("segments/<int:pk>/delete/", views_segments.segment_delete_view, name="segment-delete"),
    path("leads/import/", views.lead_import_new, name="lead-import"),
    path("leads/import/<int:pk>/", views.lead_import_detail, name="lead-import-detail"),
    path("tasks/", views_tasks.task_list, name="task-list"),
    path("tasks/<int:pk>/complete/", views_tasks.task_complete, name="task-complete"),
    path("tasks/<int:pk>/snooze/", views_tasks.task_snooze, name="task-snooze"),
    path("tasks/<int:pk>/reassign/", views_tasks.task_reassign, name="task-reassign"),
    path("notifications/", views_tasks.notification_list, name="notification-list"),
    path("notifications/read/", views_tasks.notification_read_all, name="notification-read-all"),
    path("notifications/<int:pk>/read/", views_tasks.notification_read, name="notification-read"),
    path("notifications/<int:pk>/open/", views_tasks.notification_open, name="notification-open"),
]

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from leads.forms.account import LoginForm
from leads.views import account, health, imports, privacy, tasks
from leads.views import list as lead_lists

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=LoginForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/language/", account.account_language, name="account-language"),
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
        account.PasswordResetView.as_view(
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
    path("leads/", lead_lists.lead_list, name="lead-list"),
    path("leads/bulk/", lead_lists.lead_bulk, name="lead-bulk"),
    path("leads/columns/", lead_lists.lead_columns, name="lead-columns"),
    path("leads/export.csv", lead_lists.lead_export, name="lead-export"),
    path("leads/exports/", lead_lists.lead_export_start_view, name="lead-export-start"),
    path("leads/jobs/<int:pk>/", lead_lists.lead_job_detail, name="lead-job-detail"),
    path("leads/jobs/<int:pk>/download/", lead_lists.lead_job_download, name="lead-job-download"),
    path("leads/<int:pk>/export.json", privacy.lead_export_view, name="lead-data-export"),
    path("leads/<int:pk>/erase/", privacy.lead_erase_view, name="lead-erase"),
    path("leads/import/", imports.lead_import_new, name="lead-import"),
    path("leads/import/<int:pk>/", imports.lead_import_detail, name="lead-import-detail"),
    path("tasks/", tasks.task_list, name="task-list"),
    path("tasks/<int:pk>/complete/", tasks.task_complete, name="task-complete"),
    path("tasks/<int:pk>/snooze/", tasks.task_snooze, name="task-snooze"),
    path("tasks/<int:pk>/reassign/", tasks.task_reassign, name="task-reassign"),
    path("notifications/", tasks.notification_list, name="notification-list"),
    path("notifications/read/", tasks.notification_read_all, name="notification-read-all"),
    path("notifications/<int:pk>/read/", tasks.notification_read, name="notification-read"),
    path("notifications/<int:pk>/open/", tasks.notification_open, name="notification-open"),
]

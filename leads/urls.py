from django.contrib.auth import views as auth_views
from django.urls import path

from leads import views, views_tasks

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/language/", views.account_language, name="account-language"),
    path("leads/", views.lead_list, name="lead-list"),
    path("leads/<int:pk>/", views.lead_detail, name="lead-detail"),
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

from django.contrib.auth import views as auth_views
from django.urls import path

from leads import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("leads/", views.lead_list, name="lead-list"),
    path("leads/<int:pk>/", views.lead_detail, name="lead-detail"),
    path("leads/import/", views.lead_import_new, name="lead-import"),
    path("leads/import/<int:pk>/", views.lead_import_detail, name="lead-import-detail"),
]

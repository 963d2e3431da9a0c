from django.urls import path

from emails import tracking_views

app_name = "email_tracking"

urlpatterns = [
    path("o/<str:signed>.gif", tracking_views.email_opened, name="opened"),
    path("c/<str:token>/", tracking_views.email_clicked, name="clicked"),
]

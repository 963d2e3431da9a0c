"""Addresses in email that work without a login (mounted at ``/email/``)."""

from django.urls import path

from emails import public_views

urlpatterns = [
    path("unsubscribe/<str:token>/", public_views.unsubscribe, name="email-unsubscribe"),
    path("confirm/<str:token>/", public_views.consent_confirm_view, name="email-consent-confirm"),
]

from django.urls import path

from emails import views

urlpatterns = [
    path("emails/templates/", views.template_list, name="email-template-list"),
    path("emails/templates/new/", views.template_new, name="email-template-new"),
    path(
        "emails/templates/preview/", views.template_preview_view, name="email-template-preview-new"
    ),
    path("emails/templates/test/", views.template_test_view, name="email-template-test-new"),
    path("emails/templates/<int:pk>/", views.template_edit, name="email-template-edit"),
    path(
        "emails/templates/<int:pk>/preview/",
        views.template_preview_view,
        name="email-template-preview",
    ),
    path("emails/templates/<int:pk>/test/", views.template_test_view, name="email-template-test"),
    path(
        "emails/templates/<int:pk>/delete/",
        views.template_delete_view,
        name="email-template-delete",
    ),
    path("emails/sent/", views.outbox_list, name="email-outbox"),
    path("emails/sent/<int:pk>/", views.outbox_detail, name="email-outbox-detail"),
    path("emails/held/", views.held_list, name="email-held"),
    path("emails/held/<int:pk>/<slug:action>/", views.held_action, name="email-held-action"),
    path("settings/email/", views.email_settings_page, name="settings-email"),
    path(
        "settings/email/senders/<int:pk>/delete/",
        views.sender_delete_view,
        name="settings-sender-delete",
    ),
]

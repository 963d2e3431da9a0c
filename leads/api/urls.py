from django.urls import path
from rest_framework.routers import DefaultRouter

from leads.api import consent, opportunities, tasks, views

router = DefaultRouter(trailing_slash=True)
router.register("leads", views.LeadViewSet, basename="lead")
router.register("fields", views.FieldDefinitionViewSet, basename="field")
router.register("events", views.EventViewSet, basename="event")
router.register("email-events", views.EmailEventViewSet, basename="email-event")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("tasks", tasks.TaskViewSet, basename="task")
router.register("notifications", tasks.NotificationViewSet, basename="notification")
router.register("opportunities", opportunities.OpportunityViewSet, basename="opportunity")

urlpatterns = [
    *router.urls,
    path(
        "leads/<int:lead_pk>/opportunities/",
        opportunities.LeadOpportunityViewSet.as_view({"get": "list", "post": "create"}),
        name="lead-opportunities",
    ),
    path(
        "leads/<int:lead_pk>/consent/",
        consent.LeadConsentViewSet.as_view({"get": "retrieve", "post": "create"}),
        name="lead-consent",
    ),
]

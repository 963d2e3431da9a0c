from django.urls import path
from rest_framework.routers import DefaultRouter

from flows.api import hooks, views

router = DefaultRouter()
router.register("flows", views.FlowViewSet, basename="flow")
router.register("enrollments", views.EnrollmentViewSet, basename="enrollment")
router.register("hooks", hooks.HookViewSet, basename="hook")

urlpatterns = [
    path("flows/node-types/", views.NodeTypesView.as_view(), name="flow-node-types"),
    path(
        "leads/<int:lead_pk>/enrollments/",
        views.LeadEnrollmentsViewSet.as_view({"get": "list"}),
        name="lead-enrollments",
    ),
    *router.urls,
]

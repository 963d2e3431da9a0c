from django.urls import path
from rest_framework.routers import DefaultRouter

from segments.api import views

# DefaultRouter for its format suffixes (``/segments.json``); its API root is the
# leads router's, which comes first.
router = DefaultRouter(trailing_slash=True)
router.register("segments", views.SegmentViewSet, basename="segment")

urlpatterns = [
    path(
        "leads/<int:lead_pk>/segments/",
        views.LeadSegmentsViewSet.as_view({"get": "list"}),
        name="lead-segments",
    ),
    *router.urls,
]

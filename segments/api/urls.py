from django.urls import path
from rest_framework.routers import SimpleRouter

from segments.api import views

router = SimpleRouter(trailing_slash=True)
router.register("segments", views.SegmentViewSet, basename="segment")

urlpatterns = [
    path(
        "leads/<int:lead_pk>/segments/",
        views.LeadSegmentsViewSet.as_view({"get": "list"}),
        name="lead-segments",
    ),
    *router.urls,
]

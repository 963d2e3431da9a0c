from django.urls import path
from rest_framework.routers import DefaultRouter

from scoring.api import views

router = DefaultRouter()
router.register("score-categories", views.ScoreCategoryViewSet, basename="score-category")

urlpatterns = [
    path(
        "leads/<int:lead_pk>/score/",
        views.LeadScoreView.as_view({"get": "breakdown"}),
        name="lead-score",
    ),
    path(
        "leads/<int:lead_pk>/score/changes/",
        views.LeadScoreView.as_view({"get": "ledger"}),
        name="lead-score-changes",
    ),
    path(
        "leads/<int:lead_pk>/score/adjust/",
        views.LeadScoreView.as_view({"post": "adjust"}),
        name="lead-score-adjust",
    ),
    path("scoring/settings/", views.ScoringSettingsView.as_view(), name="scoring-settings"),
    *router.urls,
]

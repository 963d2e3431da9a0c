from django.urls import path

from segments import views

urlpatterns = [
    path(
        "leads/<int:pk>/segments/",
        views.lead_segment_history_view,
        name="lead-segment-history",
    ),
    path("segments/", views.segment_list, name="segment-list"),
    path("segments/new/", views.segment_new, name="segment-new"),
    path("segments/preview/", views.segment_preview_view, name="segment-preview"),
    path("segments/<int:pk>/", views.segment_detail, name="segment-detail"),
    path("segments/<int:pk>/edit/", views.segment_edit, name="segment-edit"),
    path("segments/<int:pk>/status/", views.segment_status, name="segment-status"),
    path("segments/<int:pk>/refresh/", views.segment_refresh, name="segment-refresh"),
    path(
        "segments/<int:pk>/members/add/",
        views.segment_members_add,
        name="segment-members-add",
    ),
    path(
        "segments/<int:pk>/lead-search/",
        views.segment_lead_search,
        name="segment-lead-search",
    ),
    path(
        "segments/<int:pk>/members/remove/",
        views.segment_members_remove,
        name="segment-members-remove",
    ),
    path("segments/<int:pk>/delete/", views.segment_delete_view, name="segment-delete"),
]

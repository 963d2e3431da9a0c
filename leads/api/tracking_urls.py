"""The Segment-compatible tracking API, under ``/v1/`` (analytics.js and the
Segment SDKs post here)."""

from django.urls import path

from leads.api import tracking

urlpatterns = [
    path("identify", tracking.identify, name="identify"),
    path("track", tracking.track, name="track"),
    path("page", tracking.page, name="page"),
    path("screen", tracking.screen, name="screen"),
    path("group", tracking.group, name="group"),
    path("alias", tracking.alias, name="alias"),
    path("batch", tracking.batch, name="batch"),
    path("import", tracking.batch, name="import"),
]

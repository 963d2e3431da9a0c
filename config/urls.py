from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from leads import views as lead_views
from leads.api import segment

segment_urls = [
    path("identify", segment.identify, name="identify"),
    path("track", segment.track, name="track"),
    path("page", segment.page, name="page"),
    path("screen", segment.screen, name="screen"),
    path("group", segment.group, name="group"),
    path("alias", segment.alias, name="alias"),
    path("batch", segment.batch, name="batch"),
    path("import", segment.batch, name="import"),
]

urlpatterns = [
    path("healthz", lead_views.healthz, name="healthz"),
    path("metrics", lead_views.metrics, name="metrics"),
    path("api/v1/", include("leads.api.urls")),
    path("api/v1/", include("scoring.api.urls")),
    path("api/v1/", include("flows.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("v1/", include((segment_urls, "segment"))),
    path("anymail/", include("anymail.urls")),
    path("admin/", admin.site.urls),
    path("", include("flows.urls")),
    path("", include("leads.urls")),
]

# Under /api/ and /v1/ errors answer in the API's JSON shape; pages keep Django's.
handler400 = "leads.api.errors.bad_request"
handler403 = "leads.api.errors.permission_denied"
handler404 = "leads.api.errors.page_not_found"
handler500 = "leads.api.errors.server_error"

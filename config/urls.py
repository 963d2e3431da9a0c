from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("api/v1/", include("leads.api.urls")),
    path("api/v1/", include("scoring.api.urls")),
    path("api/v1/", include("segments.api.urls")),
    path("api/v1/", include("flows.api.urls")),
    path("api/v1/", include("emails.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("v1/", include(("leads.api.tracking_urls", "tracking"))),
    path("anymail/", include("anymail.urls")),
    # Opens and clicks of the emails Leadflow sends.
    path("e/", include("emails.tracking_urls")),
    path("email/", include("emails.public_urls")),
    path("admin/", admin.site.urls),
    path("", include("pages.urls")),
    path("", include("flows.urls")),
    path("", include("emails.urls")),
    path("", include("segments.urls")),
    path("", include("leads.urls")),
]

# Under /api/ and /v1/ errors answer in the API's JSON shape; pages keep Django's.
handler400 = "leads.api.errors.bad_request"
handler403 = "leads.api.errors.permission_denied"
handler404 = "leads.api.errors.page_not_found"
handler500 = "leads.api.errors.server_error"

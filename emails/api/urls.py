from rest_framework.routers import DefaultRouter

from emails.api import views

router = DefaultRouter()
router.register("email-templates", views.EmailTemplateViewSet, basename="email-template")

urlpatterns = [*router.urls]

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from mcpagent.health import HealthApi
from mcpagent.metrics import metrics_view

urlpatterns = [
    path("admin/dashboard/", include("sessions_app.ops.urls")),  # before admin/: an admin page of its own
    path("admin/", admin.site.urls),
    path("api/health", HealthApi.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, not inline: the Content-Security-Policy allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="mcpagent/redoc.html"), name="redoc"),
    path("api/", include("registry_app.urls")),
    path("api/", include("sessions_app.urls")),
    path("api/", include("agents_app.urls")),
    path("api/", include("mcpagent.vault.urls")),
]

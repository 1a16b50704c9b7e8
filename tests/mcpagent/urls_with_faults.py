"""The real URLconf plus two views that fail on purpose, to prove the error shape for 403 and 500
(no real endpoint crashes or forbids by design)."""

from django.core.exceptions import PermissionDenied
from django.urls import path
from rest_framework.views import APIView

from mcpagent.urls import urlpatterns as real_urlpatterns


class CrashApi(APIView):
    def get(self, request):
        raise ZeroDivisionError("boom: secret-detail-that-must-not-leak")


class ForbiddenApi(APIView):
    def get(self, request):
        raise PermissionDenied


urlpatterns = [
    path("api/test-crash", CrashApi.as_view()),
    path("api/test-forbidden", ForbiddenApi.as_view()),
    *real_urlpatterns,
]

from django.contrib import admin
from django.urls import path

from sessions_app.ops.views import dashboard

urlpatterns = [
    # admin_view: staff only (others are sent to the admin login), never cached, CSRF-protected like the admin.
    path("", admin.site.admin_view(dashboard), name="admin-dashboard"),
]

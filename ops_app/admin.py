"""Staff pages over every app's data: the dashboard's link on the admin index (the page itself: ops_app.views)."""

from django.contrib import admin

admin.site.index_template = "ops_app/admin_index.html"

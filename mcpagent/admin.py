from django.contrib import admin

from mcpagent.models import ApiClient


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "key_prefix"]
    readonly_fields = ["id", "key_prefix", "key_hash", "created_at", "last_used_at"]
    fields = ["id", "name", "is_active", "oauth_return_hosts", "key_prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        # Keys are created with `manage.py create_api_client`, which shows the key once.
        return False

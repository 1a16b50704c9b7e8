"""List filters of the catalogue admin: each a single EXISTS or array condition, so filtering stays one query."""

from django.contrib import admin
from django.db import connection, models
from django.db.models import Exists, OuterRef

from registry_app.models import CredentialRequirement, McpServer, ServerSource, ServerTool


class CategoryFilter(admin.SimpleListFilter):
    title = "category"
    parameter_name = "category"

    def lookups(self, request, model_admin):
        # categories is an array column: its distinct elements, in one query (GIN-indexed for the filter itself).
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT unnest(categories) AS c FROM {McpServer._meta.db_table} ORDER BY c")
            return [(value, value) for (value,) in cursor.fetchall()]

    def queryset(self, request, queryset):
        return queryset.filter(categories__contains=[self.value()]) if self.value() else queryset


class SourceFilter(admin.SimpleListFilter):
    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        sources = ServerSource.objects.order_by("source").values_list("source", flat=True).distinct()
        return [(source, source) for source in sources]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(Exists(ServerSource.objects.filter(server=OuterRef("pk"), source=self.value())))


class _HasRelatedFilter(admin.SimpleListFilter):
    model: type[models.Model]

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        exists = Exists(self.model.objects.filter(server=OuterRef("pk")))
        if self.value() == "yes":
            return queryset.filter(exists)
        if self.value() == "no":
            return queryset.filter(~exists)
        return queryset


class HasCredentialsFilter(_HasRelatedFilter):
    title = "has credentials"
    parameter_name = "has_credentials"
    model = CredentialRequirement


class HasToolsFilter(_HasRelatedFilter):
    title = "has tools"
    parameter_name = "has_tools"
    model = ServerTool

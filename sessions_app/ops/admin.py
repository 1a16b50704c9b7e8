"""Staff pages over every app's data: the dashboard's link on the admin index (the page: sessions_app.ops.views), and the
catalogue admin with how agents use each server.

The server admin of registry_app knows only the catalogue (registry_app imports nothing above it); here it gains
the columns that need agents and plans: runnable here, times chosen, agents using it, last validation. Runnable
here comes from annotations on the page's rows; the usage columns from one grouped query for the whole page
(sessions_app.ops.figures.server_usage), so the list makes the same number of queries for 10 rows or 500.
"""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef
from django.db.models.functions import JSONObject
from django.utils.html import format_html

from agents_app.master.launchability import assess
from sessions_app.ops.figures import ServerUsage, server_usage
from registry_app.admin import McpServerAdmin
from registry_app.models import CredentialRequirement, LaunchRecipe, McpServer

admin.site.index_template = "ops/admin_index.html"


class UsageChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        rows = list(self.result_list)
        usage = server_usage([server.slug for server in rows])
        for server in rows:
            server.usage = usage[server.slug]


def _validation(usage: ServerUsage):
    if usage.last_validation_ok is None:
        return format_html('<span class="quiet">{}</span>', "never")
    when = f"{usage.last_validated_at:%Y-%m-%d %H:%M}" if usage.last_validated_at else ""
    return format_html('<span title="{} UTC; {} of {} validations failed">{} {}</span>', when,
                       usage.validation_failures, usage.validations,
                       "✔ passed" if usage.last_validation_ok else "✘ failed", when[:10])


class CurationServerAdmin(McpServerAdmin):
    # Fits a 1,400 px window beside the admin's two sidebars: the slug and last update are on the change page,
    # the three flags share a column (each is still a filter on the right).
    list_display = ["name", "status", "flags", "popularity", "tools_count", "credentials_count", "runnable_here",
                    "times_chosen", "agents_using", "last_validation", "source_names"]

    def get_changelist(self, request, **kwargs):
        return UsageChangeList

    def get_queryset(self, request):
        kinds = LaunchRecipe.objects.filter(server=OuterRef("pk")).order_by().values("kind").distinct()
        credentials = CredentialRequirement.objects.filter(server=OuterRef("pk")).order_by().values(
            fact=JSONObject(key="key", location="location", description="description", instructions="instructions",
                            required="required", secret="secret", default="default"))
        return super().get_queryset(request).annotate(recipe_kinds=ArraySubquery(kinds),
                                                      credential_facts=ArraySubquery(credentials))

    @admin.display(description="flags")
    def flags(self, obj: McpServer) -> str:
        return ", ".join(name for name in ("verified", "official", "featured") if getattr(obj, name)) or "–"

    @admin.display(description="runnable here", boolean=True)
    def runnable_here(self, obj: McpServer) -> bool:
        return assess(set(obj.recipe_kinds or []), list(obj.credential_facts or [])).runnable_here

    @admin.display(description="times chosen")
    def times_chosen(self, obj: McpServer) -> int:
        return obj.usage.times_chosen

    @admin.display(description="agents using it")
    def agents_using(self, obj: McpServer) -> int:
        return obj.usage.agents_using

    @admin.display(description="last validation")
    def last_validation(self, obj: McpServer):
        return _validation(obj.usage)

    @admin.display(description="at a glance")
    def at_a_glance(self, obj: McpServer):
        if not obj.pk:
            return ""
        usage = server_usage([obj.slug])[obj.slug]
        facts = assess(set(obj.recipe_kinds or []), list(obj.credential_facts or []))
        return format_html(
            '{}<div class="catalogue-glance"><span>runnable here: <strong>{}</strong>{}</span><span>chosen by '
            "<strong>{}</strong> plans</span><span><strong>{}</strong> ready agents use it</span><span>last "
            "validation: {}</span></div>",
            super().at_a_glance(obj), "yes" if facts.runnable_here else "no",
            f" ({facts.blocker})" if facts.blocker else "", usage.times_chosen, usage.agents_using,
            _validation(usage),
        )


admin.site.unregister(McpServer)
admin.site.register(McpServer, CurationServerAdmin)

from django.contrib import admin, messages

from agents_app.models import Agent, AgentRun, AgentSchedule
from agents_app.services.validation import agent_revalidation_queue


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "client", "status", "model", "created_at"]
    list_filter = ["status", "model"]
    search_fields = ["id", "name", "client__name"]
    # mcp_config holds only credential references; values never reach the admin.
    readonly_fields = ["id", "client", "session", "status", "mcp_config", "server_info", "workflow", "instruction",
                       "model", "tools", "progress", "error", "metadata", "created_at", "updated_at"]
    fields = readonly_fields[:1] + ["name"] + readonly_fields[1:]
    actions = ["revalidate"]

    def has_add_permission(self, request) -> bool:
        return False  # agents are created through the API (safety checks, credential storage)

    @admin.action(description="Validate the selected agents again (start their MCP servers)")
    def revalidate(self, request, queryset) -> None:
        for agent in queryset.exclude(status__in=[Agent.Status.CREATING, Agent.Status.VALIDATING]):
            agent_revalidation_queue(agent=agent)
        self.message_user(request, f"Validation queued for {queryset.count()} agent(s).", messages.SUCCESS)


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = ["id", "agent", "status", "trigger", "model", "created_at", "finished_at"]
    list_filter = ["status", "trigger", "model"]
    search_fields = ["id", "agent__id", "agent__name"]
    readonly_fields = ["id", "agent", "status", "trigger", "message", "model", "reply", "error", "metadata", "created_at",
                       "started_at", "finished_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AgentSchedule)
class AgentScheduleAdmin(admin.ModelAdmin):
    list_display = ["agent", "cron", "interval_seconds", "timezone", "enabled", "paused_reason",
                    "consecutive_failures", "next_run_at", "last_run_at"]
    list_filter = ["enabled"]
    search_fields = ["agent__id", "agent__name"]
    # Changed through the API (agent_schedule_set validates cron and time zone); staff may only switch it off.
    readonly_fields = ["agent", "cron", "interval_seconds", "timezone", "paused_reason", "consecutive_failures",
                       "next_run_at", "last_run_at", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False

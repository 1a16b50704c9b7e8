from django.urls import path

from agents_app.apis import (
    AgentConfigApi,
    AgentCreateApi,
    AgentDetailApi,
    AgentListApi,
    AgentMessagesApi,
    AgentRunApi,
    AgentScheduleApi,
    AgentValidateApi,
)
from agents_app.apis_runs import (
    AgentRunEventsApi,
    AgentRunListApi,
    AgentTriggerDetailApi,
    AgentTriggersApi,
    TriggerHookApi,
)

urlpatterns = [
    path("agents", AgentListApi.as_view(), name="agent-list"),
    path("agents/create", AgentCreateApi.as_view(), name="agent-create"),
    path("agents/<str:agent_id>", AgentDetailApi.as_view(), name="agent-detail"),
    path("agents/<str:agent_id>/config", AgentConfigApi.as_view(), name="agent-config"),
    path("agents/<str:agent_id>/messages", AgentMessagesApi.as_view(), name="agent-messages"),
    path("agents/<str:agent_id>/validate", AgentValidateApi.as_view(), name="agent-validate"),
    path("agents/<str:agent_id>/schedule", AgentScheduleApi.as_view(), name="agent-schedule"),
    path("agents/<str:agent_id>/runs", AgentRunListApi.as_view(), name="agent-runs"),
    path("agents/<str:agent_id>/runs/<str:run_id>", AgentRunApi.as_view(), name="agent-run"),
    path("agents/<str:agent_id>/runs/<str:run_id>/events", AgentRunEventsApi.as_view(), name="agent-run-events"),
    path("agents/<str:agent_id>/triggers", AgentTriggersApi.as_view(), name="agent-triggers"),
    path("agents/<str:agent_id>/triggers/<str:trigger_id>", AgentTriggerDetailApi.as_view(), name="agent-trigger"),
    # The token is the secret: request logs show this route with the token masked (mcpagent.request_logging).
    path("hooks/<str:token>", TriggerHookApi.as_view(), name="trigger-hook"),
]

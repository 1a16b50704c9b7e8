from django.urls import path

from agents_app.apis import (
    AgentConfigApi,
    AgentCreateApi,
    AgentDetailApi,
    AgentListApi,
    AgentMessagesApi,
    AgentRunApi,
    AgentScheduleApi,
)

urlpatterns = [
    path("agents", AgentListApi.as_view(), name="agent-list"),
    path("agents/create", AgentCreateApi.as_view(), name="agent-create"),
    path("agents/<str:agent_id>", AgentDetailApi.as_view(), name="agent-detail"),
    path("agents/<str:agent_id>/config", AgentConfigApi.as_view(), name="agent-config"),
    path("agents/<str:agent_id>/messages", AgentMessagesApi.as_view(), name="agent-messages"),
    path("agents/<str:agent_id>/schedule", AgentScheduleApi.as_view(), name="agent-schedule"),
    path("agents/<str:agent_id>/runs/<str:run_id>", AgentRunApi.as_view(), name="agent-run"),
]

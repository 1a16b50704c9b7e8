from django.urls import path

from mcpagent.vault.apis import ConnectionDetailApi, ConnectionListApi

urlpatterns = [
    path("connections", ConnectionListApi.as_view(), name="connection-list"),
    path("connections/<str:connection_id>", ConnectionDetailApi.as_view(), name="connection-detail"),
]

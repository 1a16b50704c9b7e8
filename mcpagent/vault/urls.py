from django.urls import path

from mcpagent.vault.apis import ConnectionDetailApi, ConnectionListApi
from mcpagent.vault.oauth_apis import OAuthCallbackApi, OAuthClientMetadataApi

urlpatterns = [
    path("connections", ConnectionListApi.as_view(), name="connection-list"),
    path("connections/<str:connection_id>", ConnectionDetailApi.as_view(), name="connection-detail"),
    path("oauth/callback", OAuthCallbackApi.as_view(), name="oauth-callback"),
    path("oauth/client-metadata", OAuthClientMetadataApi.as_view(), name="oauth-client-metadata"),
]

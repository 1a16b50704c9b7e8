from django.urls import path

from registry_app.apis import ServerDetailApi, ServerListApi, ServerSearchApi

urlpatterns = [
    path("servers/", ServerListApi.as_view(), name="server-list"),
    # Before the detail route: "search" is not a server slug here.
    path("servers/search", ServerSearchApi.as_view(), name="server-search"),
    path("servers/<slug:slug>", ServerDetailApi.as_view(), name="server-detail"),
]

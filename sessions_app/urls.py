from django.urls import path

from sessions_app.apis import ChatApi, SessionCreateApi, SessionDetailApi

urlpatterns = [
    path("chat", ChatApi.as_view(), name="chat"),
    path("sessions/create", SessionCreateApi.as_view(), name="session-create"),
    path("sessions/<str:session_id>", SessionDetailApi.as_view(), name="session-detail"),
]

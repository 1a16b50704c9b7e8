from django.urls import path

from sessions_app.apis import ChatApi, SessionCreateApi, SessionDetailApi
from sessions_app.apis_files import SessionFileUploadApi

urlpatterns = [
    path("chat", ChatApi.as_view(), name="chat"),
    path("sessions/create", SessionCreateApi.as_view(), name="session-create"),
    path("sessions/<str:session_id>", SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<str:session_id>/files", SessionFileUploadApi.as_view(), name="session-files"),
]

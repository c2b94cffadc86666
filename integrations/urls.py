from django.urls import path, re_path

from . import views

app_name = "integrations"

urlpatterns = [
    path("connections/", views.ConnectionListView.as_view(), name="connections"),
    re_path(
        r"^connections/(?P<connection_id>[0-9a-f]{32})/rotate-key/$",
        views.RotateApiKeyView.as_view(),
        name="rotate-key",
    ),
]

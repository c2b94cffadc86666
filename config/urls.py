from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from integrations import views as integration_views
from records.api import api as records_api
from references.views_home import TenantHomeView

urlpatterns = [
    path("", integration_views.home, name="home"),
    # Pages link the SVG icon; this answers browsers (and the admin's pages) that ask anyway.
    path(
        "favicon.ico",
        RedirectView.as_view(url=f"/{settings.STATIC_URL.lstrip('/')}favicon.svg"),
        name="favicon",
    ),
    path("login/", integration_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", records_api.urls),
    path("t/<slug:tenant_slug>/", TenantHomeView.as_view(), name="tenant-home"),
    path("t/<slug:tenant_slug>/", include("integrations.urls")),
    path("t/<slug:tenant_slug>/", include("references.urls")),
    path("t/<slug:tenant_slug>/", include("records.urls")),
]

# A database outage outside a view (e.g. saving the session) is a 503, not a 500.
handler500 = "config.security.server_error"

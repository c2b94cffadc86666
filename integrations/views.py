from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.generic import TemplateView

from . import apikeys
from .forms import LoginForm
from .models import Connection, Membership
from .tenancy import TenantMixin


class LoginView(auth_views.LoginView):
    """Django's log-in page with throttled failures (integrations/throttling.py)."""

    authentication_form = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.lockout:
            response.status_code = 429
            response["Retry-After"] = str(form.lockout.retry_after)
        return response


@login_required
def home(request):
    """Send a user to their tenant, or let them pick when they have several."""
    memberships = list(
        Membership.objects.filter(user=request.user)
        .select_related("tenant")
        .order_by("tenant__name")
    )
    if len(memberships) == 1 and "pick" not in request.GET:
        return redirect("tenant-home", tenant_slug=memberships[0].tenant.slug)
    return render(request, "integrations/tenant_picker.html", {"memberships": memberships})


class ConnectionListView(TenantMixin, TemplateView):
    """The tenant's connections: their ids (which the API and custom data keys use) and,
    for API connections, when the key was last rotated."""

    template_name = "integrations/connection_list.html"

    def get_context_data(self, **kwargs):
        connections = self.scoped(Connection).select_related("connector").order_by("name")
        return super().get_context_data(connections=connections, **kwargs)


class RotateApiKeyView(TenantMixin, TemplateView):
    """Tenant admins give an API connection a new key: confirm first, then show it once.

    The key is only in this one response (no-store), never in a message, session or log.
    """

    admin_required = True
    template_name = "integrations/rotate_api_key.html"

    def resolve_objects(self) -> None:
        self.get_connection()

    def get_connection(self) -> Connection:
        return self.get_object_or_404(
            Connection.objects.select_related("connector").filter(connector__category="api"),
            connection_id=self.kwargs["connection_id"],
        )

    def get(self, request, *args, **kwargs):
        return self.render_to_response({"connection": self.get_connection()})

    def post(self, request, *args, **kwargs):
        connection = self.get_connection()
        if request.POST.get("confirm") != "rotate":
            return self.render_to_response({"connection": connection}, status=400)
        key = apikeys.rotate_key(connection)
        response = self.render_to_response(
            {
                "connection": connection,
                "key": key,
                "api_url": request.build_absolute_uri("/api/v1/"),
            }
        )
        response["Cache-Control"] = "no-store"
        return response

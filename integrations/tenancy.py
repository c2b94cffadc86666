"""The one place that decides which tenant a request acts on.

Views inherit TenantMixin: it resolves the tenant from the URL's slug and the user's
membership, so another tenant's slug (or any object under it) is a 404, never a 403 that
would tell an outsider the tenant exists. Querysets are then scoped with `for_tenant`.
"""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404

from common.numbers import parse_number
from common.prepared import PreparedQuery

from .models import Membership


def _memberships(user_id: int, tenant_slug: str):
    # How many tenants the user works on decides whether the header offers "Switch tenant":
    # asked in the same query.
    tenant_count = (
        Membership.objects.filter(user=OuterRef("user"))
        .order_by()
        .values("user")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return (
        Membership.objects.select_related("tenant", "tenant__reseller")
        .annotate(tenant_count=Subquery(tenant_count))
        .filter(user_id=user_id, tenant__slug=tenant_slug)
    )


# Asked by every page: compiled once per process (common.prepared).
_membership = PreparedQuery(_memberships)


def membership_for(user, tenant_slug: str) -> Membership:
    if not user.is_authenticated:
        raise Http404
    membership = _membership.first(user_id=user.pk, tenant_slug=tenant_slug)
    if membership is None:
        raise Http404
    membership.user = user  # the request's, already loaded: no query
    return membership


class TenantMixin(LoginRequiredMixin):
    """Sets `request.tenant` and `request.membership` from the URL's `tenant_slug`, resolves
    the rest of the URL (`resolve`), then checks the role (`admin_required`)."""

    admin_required = False

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = membership_for(request.user, kwargs["tenant_slug"])
        request.tenant = membership.tenant
        request.membership = membership
        # What the URL names is resolved before the role is checked: another tenant's object
        # (or one that does not exist) is a 404 for everyone, so a 403 never tells a support
        # user that it exists. Admins look the objects up in the view itself, as usual.
        self.resolve()
        if self.admin_required and not membership.is_admin:
            self.resolve_objects()
            raise PermissionDenied("Only tenant admins may do this.")
        return super().dispatch(request, *args, **kwargs)

    def resolve(self) -> None:
        """Look up what the URL names below the tenant (404 if it is not the tenant's)."""

    def resolve_objects(self) -> None:
        """Look up the objects the URL names below `resolve` (a record, a batch...): 404 if one
        is not the tenant's. Called before a 403, so that the 403 is only ever for the
        tenant's own objects."""

    @property
    def tenant(self):
        return self.request.tenant

    def scoped(self, queryset):
        """Restrict a model's queryset (or a queryset) to the request's tenant."""
        manager_or_queryset = getattr(queryset, "objects", queryset)
        return manager_or_queryset.for_tenant(self.request.tenant)

    def get_object_or_404(self, queryset, **lookup):
        return get_object_or_404(self.scoped(queryset), **lookup)

    def url_id(self, name: str) -> int:
        """The id the URL names under `name` (digits, by its pattern), or a 404 when it is no
        id the database could hold: 30 or 5,000 digits name nothing."""
        number = parse_number(str(self.kwargs[name]))
        if number is None:
            raise Http404
        return number

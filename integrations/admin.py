"""The Django admin for resellers: each reseller's staff see and edit only their own tenants.

Superusers see everything. Scoping happens in one mixin (queryset, FK choices, object
permissions), the admin's equivalent of the app's TenantMixin.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.db.models import PROTECT, RESTRICT, Q
from django.template.response import TemplateResponse
from django.utils.formats import date_format
from django.utils.text import capfirst
from django.utils.timezone import localtime

from . import apikeys
from .admin_columns import short_id
from .forms import AdminLoginForm
from .models import Connection, Connector, Integration, Membership, Reseller, Tenant

# The admin's own log-in page is throttled like the main one.
admin.site.login_form = AdminLoginForm
admin.site.site_header = "refdesk administration"
admin.site.site_title = "refdesk admin"
admin.site.index_title = "Resellers, tenants and their connections"
admin.site.site_url = "/"


def is_reseller_staff(user) -> bool:
    return user.is_active and user.is_staff and user.resellers.exists()


class GuardedDeleteAdmin(admin.ModelAdmin):
    """The delete page never walks every related row (Django's collects them all to list them:
    a connection's million remote ids), and refuses what would take rows written only through
    the change engine with it.

    `delete_refused_while`: related model label -> why the object is not deleted here and what
    to do instead (`{obj}` is the object). A PROTECT or RESTRICT relation in use refuses too.
    """

    delete_refused_while: dict[str, str] = {}
    delete_confirmation_template = "admin/refdesk/delete_confirmation.html"
    delete_selected_confirmation_template = "admin/refdesk/delete_selected_confirmation.html"

    def get_deleted_objects(self, objs, request):
        """(deleted objects, counts, permissions lacking, refusals) as the delete pages take
        them: the objects themselves, or why they are not deleted here."""
        objs = list(objs)
        refusals = [reason for obj in objs for reason in self.delete_refusals(obj)]
        if refusals:
            return [], {}, set(), list(dict.fromkeys(refusals))
        opts = self.model._meta
        listed = [f"{capfirst(opts.verbose_name)}: {obj}" for obj in objs]
        return listed, {opts.verbose_name_plural: len(objs)}, set(), []

    def delete_refusals(self, obj) -> list[str]:
        """One indexed EXISTS per relation that can refuse, never a walk of its rows."""
        reasons = []
        for relation in obj._meta.related_objects:
            related = relation.related_model
            reason = self.delete_refused_while.get(related._meta.label)
            if reason is None and relation.on_delete in (PROTECT, RESTRICT):
                reason = (
                    "“{obj}” is used by "
                    + f"{related._meta.verbose_name_plural}: "
                    + ("delete or change those first.")
                )
            if reason and related._base_manager.filter(**{relation.field.name: obj}).exists():
                reasons.append(reason.format(obj=obj))
        return reasons


class ResellerScopedAdmin(GuardedDeleteAdmin):
    """Limits rows and foreign-key choices to the user's resellers.

    `reseller_path` is the lookup from the model to its Reseller.
    """

    reseller_path: str = "tenant__reseller"

    def _scope(self, queryset, request, path: str):
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{path}__in": request.user.resellers.all()})

    def get_queryset(self, request):
        return self._scope(super().get_queryset(request), request, self.reseller_path)

    def get_list_filter(self, request):
        """Sidebar filters on relations offer only values of the user's own rows: a plain
        RelatedFieldListFilter would list every reseller's tenants and connections."""
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [
            (item, admin.RelatedOnlyFieldListFilter)
            if isinstance(item, str) and get_fields_from_path(self.model, item)[-1].is_relation
            else item
            for item in filters
        ]

    def _may_use(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        if not is_reseller_staff(request.user):
            return False
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request):
        return self._may_use(request)

    def has_view_permission(self, request, obj=None):
        return self._may_use(request, obj)

    def has_add_permission(self, request):
        return self._may_use(request)

    def has_change_permission(self, request, obj=None):
        return self._may_use(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_use(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        model = db_field.related_model
        if model is Reseller:
            kwargs["queryset"] = self._scope(Reseller.objects.all(), request, "pk")
        elif model is Tenant:
            kwargs["queryset"] = self._scope(Tenant.objects.all(), request, "reseller")
        elif model is Connection:
            kwargs["queryset"] = self._scope(
                Connection.objects.select_related("tenant"), request, "tenant__reseller"
            )
        elif model is get_user_model() and not request.user.is_superuser:
            # Reseller staff pick among their tenants' users; creating users is for superusers.
            resellers = request.user.resellers.all()
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(
                    Q(memberships__tenant__reseller__in=resellers) | Q(resellers__in=resellers)
                )
                .distinct()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Reseller)
class ResellerAdmin(ResellerScopedAdmin):
    reseller_path = "pk"
    list_display = ["name", "tenant_count"]
    search_fields = ["name"]
    filter_horizontal = ["staff"]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        return [] if request.user.is_superuser else ["name", "staff"]

    @admin.display(description="Tenants")
    def tenant_count(self, obj):
        return obj.tenants.count()


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


# What deleting one of these here would take with it unrecorded: remote ids, with no batch,
# no audit entry, no count update and no undo.
NO_UNDO = "Deleting it here would remove them with no batch, no audit entry and no undo."


@admin.register(Tenant)
class TenantAdmin(ResellerScopedAdmin):
    reseller_path = "reseller"
    delete_refused_while = {
        "records.Record": (
            "“{obj}” has records, with the ids its connections know them by. "
            + NO_UNDO
            + " To stop its syncs, deactivate its connections (Connections ▸ untick Active)."
            " To remove its references, delete them on its References pages (Delete all, per"
            " tab), where each delete is a batch that can be undone."
        ),
    }
    list_display = ["name", "slug", "reseller", "created_at"]
    list_filter = ["reseller"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["reseller"]


@admin.register(Membership)
class MembershipAdmin(ResellerScopedAdmin):
    list_display = ["user", "tenant", "role"]
    list_filter = ["role", "tenant__reseller", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__name"]
    autocomplete_fields = ["tenant"]
    list_select_related = ["user", "tenant"]


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "category", "is_native"]
    list_filter = ["category", "is_native"]
    search_fields = ["name", "code"]

    def has_module_permission(self, request):
        return request.user.is_superuser or is_reseller_staff(request.user)

    def has_view_permission(self, request, obj=None):
        # Reseller staff read the catalogue (to pick connectors); only superusers change it.
        return self.has_module_permission(request)


@admin.register(Connection)
class ConnectionAdmin(ResellerScopedAdmin):
    delete_refused_while = {
        "records.RemoteId": (
            "“{obj}” holds remote ids. "
            + NO_UNDO
            + " Deactivate it instead (untick Active): it stops syncing and keeps its ids. To"
            " remove its ids, delete its references first on the References page of its"
            " integration, where the delete is a batch that can be undone."
        ),
    }
    list_display = ["name", "connector", "tenant", "short_connection_id", "active"]
    list_filter = ["active", "connector__category", "connector", "tenant__reseller"]
    search_fields = ["name", "connection_id", "tenant__name"]
    readonly_fields = ["connection_id", "api_key_status"]
    autocomplete_fields = ["tenant", "connector"]
    list_select_related = ["connector", "tenant"]
    actions = ["rotate_api_key"]

    @admin.display(description="Connection id", ordering="connection_id")
    def short_connection_id(self, obj):
        return short_id(obj.connection_id)

    @admin.display(description="API key")
    def api_key_status(self, obj):
        if obj.pk is None or not obj.connector.is_api:
            return "Only connections of an API connector have keys."
        if not obj.api_key_digest:
            return "No key yet. Use the action “Rotate API key” in the list to make one."
        rotated = date_format(localtime(obj.api_key_rotated_at), "DATETIME_FORMAT")
        return (
            f"Last rotated {rotated}; stored hashed, shown only once. For a new key, use the "
            "action “Rotate API key” in the list (the old key stops working)."
        )

    @admin.action(description="Rotate API key (the old key stops working)", permissions=["change"])
    def rotate_api_key(self, request, queryset):
        """Show the new keys on the response page itself: never stored, not even in a message
        cookie or the session, and gone once the page is left."""
        rotated, skipped = [], []
        for connection in queryset.select_related("connector", "tenant"):
            if connection.connector.is_api:
                rotated.append((connection, apikeys.rotate_key(connection)))
            else:
                skipped.append(connection)
        if skipped:
            self.message_user(
                request,
                "Not rotated (not API connections): " + ", ".join(str(c) for c in skipped),
                level=messages.WARNING,
            )
        if not rotated:
            return None
        response = TemplateResponse(
            request,
            "admin/integrations/connection/api_key_rotated.html",
            {
                **self.admin_site.each_context(request),
                "title": "New API keys",
                "opts": self.model._meta,
                "rotated": rotated,
                "api_url": request.build_absolute_uri("/api/v1/"),
            },
        )
        response["Cache-Control"] = "no-store"
        return response


@admin.register(Integration)
class IntegrationAdmin(ResellerScopedAdmin):
    list_display = ["name", "tenant", "source", "target", "synced_types"]
    list_filter = ["tenant__reseller", "tenant"]
    search_fields = ["name", "tenant__name", "source__name", "target__name"]
    autocomplete_fields = ["tenant", "source", "target"]
    list_select_related = ["tenant", "source", "target"]

    @admin.display(description="Entity types")
    def synced_types(self, obj):
        """`article, customer, order`: the JSON list without its brackets and quotes."""
        return ", ".join(str(name) for name in obj.entity_types or []) or None

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Concat, Substr
from django.shortcuts import redirect
from django.utils.html import format_html
from django.utils.text import capfirst

from integrations.admin import ResellerScopedAdmin
from integrations.admin_columns import short_id, short_text, short_time
from integrations.models import Connection

from .models import AuditEntry, Batch, Job, Record, RemoteId

# Task results are the queue's bookkeeping, not scoped to a reseller: jobs are shown through
# our own Job model (below), which is.
try:
    from django_tasks_db.models import DBTaskResult

    admin.site.unregister(DBTaskResult)
except (ImportError, admin.sites.NotRegistered):  # the RQ backend: nothing registered
    pass


class ReadOnlyAdmin(ResellerScopedAdmin):
    """Tenant data is changed through refdesk's services (audited), not the admin."""

    delete_refused = (
        "{name} are not deleted in the admin: they are written through refdesk's pages and "
        "API, which audit every change."
    )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def delete_view(self, request, object_id, extra_context=None):
        """A delete URL of an object the user may see says why it is not deleted and what to
        do instead (not a bare 403), and takes them back to the list. Any other id gets
        Django's answer, as for every admin: nothing about another reseller's rows leaks."""
        if self.get_object(request, unquote(object_id)) is None:
            return super().delete_view(request, object_id, extra_context)
        opts = self.model._meta
        message = self.delete_refused.format(name=capfirst(opts.verbose_name_plural))
        self.message_user(request, message, level=messages.ERROR)
        return redirect(f"admin:{opts.app_label}_{opts.model_name}_changelist")


CONNECTION_ACTOR = "connection/"
USER_ACTOR = "user/"


def known_as(record_field: str):
    """A subquery: the record's first remote id as people know it ("Shopify 5001"), so a
    changelist names a record without a query per row (its local id stays on hover)."""
    return Subquery(
        # Correlated on the tenant too: one shard per row on Citus.
        RemoteId.objects.filter(tenant=OuterRef("tenant"), record_id=OuterRef(record_field))
        .order_by("connection__name", "remote_id")
        .annotate(named=Concat("connection__name", Value(" "), "remote_id"))
        .values("named")[:1]
    )


def record_column(name: str | None, local_id: str | None):
    """A record by the id people know, the local id on hover; the short local id only when
    the record has no remote id at all."""
    if name:
        return format_html('<span title="local id {}">{}</span>', local_id, short_text(name, 30))
    return short_id(local_id)


class ActorNameAdmin(ReadOnlyAdmin):
    """Shows an actor as people know it: `connection/<32 hex>` as the connection's name,
    `user/anna` as her name ("Anna Admin", or "anna" without one); the stored form on hover.

    The names come from subqueries (the same tenant's connections, the user by login), so a
    page of rows costs no extra query; systems (`system/sync`) are shown as stored.
    """

    actor_field = "actor"

    def get_queryset(self, request):
        connection_name = Connection.objects.filter(
            tenant=OuterRef("tenant"),
            connection_id=Substr(OuterRef(self.actor_field), len(CONNECTION_ACTOR) + 1),
        ).values("name")[:1]
        person_name = (
            get_user_model()
            .objects.filter(username=Substr(OuterRef(self.actor_field), len(USER_ACTOR) + 1))
            .annotate(full_name=Concat("first_name", Value(" "), "last_name"))
            .values("full_name")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                actor_connection_name=Subquery(connection_name),
                actor_person_name=Subquery(person_name),
            )
        )

    def actor_column(self, obj):
        actor = getattr(obj, self.actor_field)
        if actor.startswith(CONNECTION_ACTOR):
            name = getattr(obj, "actor_connection_name", None)
        elif actor.startswith(USER_ACTOR):
            name = (getattr(obj, "actor_person_name", None) or "").strip()
            name = name or actor.removeprefix(USER_ACTOR)
        else:
            name = None
        if name:
            return format_html('<span title="{}">{}</span>', actor, short_text(name, 30))
        return short_text(actor, 30)

    # The columns the batch, audit and job lists share.
    @admin.display(description="Created at", ordering="created_at")
    def when(self, obj):
        return short_time(obj.created_at)

    @admin.display(description="Actor", ordering="actor")
    def actor_name(self, obj):
        return self.actor_column(obj)


@admin.register(Record)
class RecordAdmin(ActorNameAdmin):
    delete_refused = (
        "{name} are not deleted in the admin: their remote ids would go with no batch, no audit "
        "entry and no undo. To unlink a reference, delete it on its integration's References "
        "page, where it can be undone."
    )
    list_display = ["record_name", "record_type", "tenant", "modified", "modified_by"]
    list_filter = ["record_type"]
    search_fields = ["=local_id"]
    list_select_related = ["tenant"]
    show_full_result_count = False
    actor_field = "last_modified_by"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(known_as=known_as("pk"))

    @admin.display(description="Record", ordering="local_id")
    def record_name(self, obj):
        return record_column(getattr(obj, "known_as", None), obj.local_id)

    @admin.display(description="Last modified", ordering="last_modified")
    def modified(self, obj):
        return short_time(obj.last_modified)

    @admin.display(description="Last modified by", ordering="last_modified_by")
    def modified_by(self, obj):
        return self.actor_column(obj)


@admin.register(RemoteId)
class RemoteIdAdmin(ReadOnlyAdmin):
    delete_refused = (
        "{name} are not deleted in the admin: they would go with no batch, no audit entry and "
        "no undo. To unlink a reference, delete it on its integration's References page, where "
        "it can be undone."
    )
    list_display = [
        "short_remote_id",
        "short_remote_ref",
        "record_type",
        "connection",
        "tenant",
    ]
    list_filter = ["record_type", "connection"]
    search_fields = ["remote_id", "remote_ref"]
    list_select_related = ["connection", "record", "tenant"]

    @admin.display(description="Remote id", ordering="remote_id")
    def short_remote_id(self, obj):
        # The row names its record itself: the record's local id stays on hover.
        return format_html(
            '<span title="record {}">{}</span>',
            obj.record.local_id,
            short_text(obj.remote_id, 24),
        )

    @admin.display(description="Remote ref", ordering="remote_ref")
    def short_remote_ref(self, obj):
        return short_text(obj.remote_ref, 30)


@admin.register(Batch)
class BatchAdmin(ActorNameAdmin):
    list_display = ["when", "kind", "short_description", "row_count", "actor_name", "restored"]
    list_filter = ["kind"]

    @admin.display(description="Description", ordering="description")
    def short_description(self, obj):
        return short_text(obj.description, 60)

    @admin.display(description="Restored at", ordering="restored_at")
    def restored(self, obj):
        return short_time(obj.restored_at)


@admin.register(AuditEntry)
class AuditEntryAdmin(ActorNameAdmin):
    list_display = ["when", "actor_name", "action", "record_local_id", "short_summary"]
    list_filter = ["action"]
    search_fields = ["=local_id", "actor"]
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(known_as=known_as("record_id"))

    @admin.display(description="Record", ordering="local_id")
    def record_local_id(self, obj):
        return record_column(getattr(obj, "known_as", None), obj.local_id)

    @admin.display(description="Summary")
    def short_summary(self, obj):
        return short_text(obj.summary, 60)


@admin.register(Job)
class JobAdmin(ActorNameAdmin):
    list_display = [
        "when",
        "short_description",
        "tenant",
        "actor_name",
        "state",
        "progress",
    ]
    list_filter = ["state", "kind"]
    list_select_related = ["tenant"]

    @admin.display(description="Description", ordering="description")
    def short_description(self, obj):
        return short_text(obj.description, 60)

    @admin.display(description="Started by", ordering="actor")
    def actor_name(self, obj):
        return self.actor_column(obj)

    @admin.display(description="Rows")
    def progress(self, obj):
        """Rows done of total; when it started and finished are on the job's page."""
        return f"{obj.done:,} of {obj.total:,}"

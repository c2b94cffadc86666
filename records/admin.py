from django.contrib import admin

from integrations.admin import ResellerScopedAdmin

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

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Record)
class RecordAdmin(ReadOnlyAdmin):
    list_display = ["local_id", "record_type", "tenant", "last_modified", "last_modified_by"]
    list_filter = ["record_type"]
    search_fields = ["=local_id"]
    list_select_related = ["tenant"]
    show_full_result_count = False


@admin.register(RemoteId)
class RemoteIdAdmin(ReadOnlyAdmin):
    list_display = ["remote_id", "remote_ref", "record_type", "connection", "record", "tenant"]
    list_filter = ["record_type", "connection"]
    search_fields = ["remote_id", "remote_ref"]
    list_select_related = ["connection", "record", "tenant"]


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "description", "row_count", "actor", "restored_at"]
    list_filter = ["kind"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "action", "local_id", "summary"]
    list_filter = ["action"]
    search_fields = ["=local_id", "actor"]
    show_full_result_count = False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "description",
        "tenant",
        "actor",
        "state",
        "done",
        "total",
        "finished_at",
    ]
    list_filter = ["state", "kind"]
    list_select_related = ["tenant"]

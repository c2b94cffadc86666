import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils import timezone

from integrations.models import HEX32_PATTERN, Connection, TenantQuerySet, new_hex_id
from integrations.tenant_keys import TenantForeignKey, TenantOwnedModel

from .validation import MAX_SOURCE_CODE_LENGTH

# --- one writer: RemoteId, Batch and BatchChange rows are written by records.changes only ---

_engine_writing = contextvars.ContextVar("refdesk_engine_writing", default=False)


class WriteOutsideEngine(RuntimeError):
    """A remote id, batch or batch change was written outside records.changes.apply()."""


def _check_engine_is_writing(model) -> None:
    if not _engine_writing.get():
        raise WriteOutsideEngine(
            f"{model.__name__} rows are written only by records.changes.apply(); "
            "build a change set instead."
        )


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Open the door for the change engine's writes (and for test factories building a world).

    tests/test_architecture.py fails if any other module of the app opens it.
    """
    token = _engine_writing.set(True)
    try:
        yield
    finally:
        _engine_writing.reset(token)


class EngineWrittenQuerySet(TenantQuerySet):
    """Refuses bulk writes outside the change engine (reads are free)."""

    def bulk_create(self, *args, **kwargs):
        _check_engine_is_writing(self.model)
        return super().bulk_create(*args, **kwargs)

    def bulk_update(self, *args, **kwargs):
        _check_engine_is_writing(self.model)
        return super().bulk_update(*args, **kwargs)

    def update(self, *args, **kwargs):
        _check_engine_is_writing(self.model)
        return super().update(*args, **kwargs)

    def delete(self):
        _check_engine_is_writing(self.model)
        return super().delete()


class EngineWrittenModel(TenantOwnedModel):
    """A model whose rows only the change engine writes; deleting its parents still cascades."""

    objects = EngineWrittenQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        _check_engine_is_writing(type(self))
        return super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        _check_engine_is_writing(type(self))
        return super().delete(*args, **kwargs)


# C0 controls and DEL; the services reject every Unicode control character (category Cc),
# the database refuses at least these even if a bulk path bypasses the services.
CONTROL_CHARACTERS_PATTERN = r"[\x01-\x1f\x7f]"


@dataclass(frozen=True)
class RecordSource:
    """A record's creator: a connection (with the code it gave), a user or the system."""

    KINDS: ClassVar[tuple[str, ...]] = ("connection", "user", "system")

    kind: str
    # The connection's connection_id, the user's login, or what the system did it with.
    ident: str
    code: str = ""
    # None unless a connection created it (and still exists).
    connection: Connection | None = None

    @property
    def label(self) -> str:
        """As people read it: "Warehouse API (connection, code: store-2)", "user admin",
        "sync (system)"."""
        if self.kind == "connection":
            name = self.connection.name if self.connection is not None else self.ident
            return f"{name} (connection{f', code: {self.code}' if self.code else ''})"
        if self.kind == "user":
            return f"user {self.ident}"
        return f"{self.ident} (system)"


class CurrentTransactionId(models.Func):
    """The id of the transaction that writes the row (PostgreSQL's `pg_current_xact_id()`, its
    64-bit form as a bigint); NULL elsewhere. The delta feed hands out only rows whose writer
    has ended (records.services.changed_records); SQLite has one writer and needs none."""

    template = "NULL"
    output_field = models.BigIntegerField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return "(pg_current_xact_id()::text::bigint)", []


class Record(TenantOwnedModel):
    """One entity in the platform, known to zero or more connections by their remote ids."""

    # No index of its own: the unique (tenant, local_id) and the delta-sync index lead with it.
    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE, db_index=False)
    local_id = models.CharField(max_length=32, default=new_hex_id, editable=False)
    record_type = models.CharField(max_length=40)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_modified = models.DateTimeField(default=timezone.now)
    last_modified_by = models.CharField(max_length=300)
    record_source = models.CharField(
        max_length=300, blank=True, help_text="Who created the record, in {type}/{id} form."
    )
    # The API's recordSource beyond record_source: the creating connection (for its name and
    # connector, one join when read) and the code it gave. No index: deleting a connection is
    # rare enough to scan for its records (and each index costs every bulk insert).
    source_connection = models.ForeignKey(
        "integrations.Connection",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        help_text="The connection that created the record, if one did.",
    )
    source_code = models.CharField(
        max_length=MAX_SOURCE_CODE_LENGTH,
        blank=True,
        default="",
        db_default="",
        help_text="Which source in the creating connection's system (recordSource.code).",
    )
    # Bumped by every change through the services; edit forms carry it (optimistic locking).
    version = models.PositiveIntegerField(default=1)
    # The transaction that last changed the record: set by the database on insert, and by
    # audit.mark_changed in the same UPDATE as last_modified. The feed's order and cursor.
    change_xid = models.BigIntegerField(
        null=True, blank=True, editable=False, db_default=CurrentTransactionId()
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        # Newest first by id: an index every table has. Pages that sort by last_modified do so
        # within a tenant and type, on record_delta_sync_idx.
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "local_id"], name="record_unique_local_id"),
            models.CheckConstraint(
                condition=Q(local_id__regex=HEX32_PATTERN), name="record_local_id_is_32_hex"
            ),
            models.CheckConstraint(
                condition=Q(last_modified_by__contains="/"),
                name="record_last_modified_by_is_type_slash_id",
            ),
        ]
        indexes = [
            # Delta sync: modifiedAtOrAfter, keyset-paginated on (last_modified, local_id).
            models.Index(
                fields=["tenant", "record_type", "last_modified", "local_id"],
                name="record_delta_sync_idx",
            ),
            # The feed on PostgreSQL: transaction by transaction, then by id. Narrow, and a bulk
            # change (one transaction, records in id order) appends to its end: an index with
            # local_id (random) after the transaction made delete-all's UPDATE ~50% slower.
            models.Index(
                fields=["tenant", "record_type", "change_xid", "id"], name="record_feed_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.record_type} {self.local_id}"

    @property
    def source(self) -> RecordSource:
        """Who created the record, as the API's recordSource and the record page show it."""
        kind, _, ident = self.record_source.partition("/")
        if kind not in RecordSource.KINDS or not ident:
            kind, ident = "system", self.record_source or "unknown"
        return RecordSource(
            kind=kind,
            ident=ident,
            code=self.source_code if kind == "connection" else "",
            connection=self.source_connection if kind == "connection" else None,
        )


class RemoteId(EngineWrittenModel):
    """A record's id in one connection's remote system: the one source of truth for references."""

    # Every index of the table leads with tenant: no index of its own (each costs a bulk write).
    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE, db_index=False)
    record = TenantForeignKey(Record, on_delete=models.CASCADE, related_name="remote_ids")
    # Queries name the connection after the tenant (the unique indexes); deleting a connection
    # is rare enough to scan for its rows.
    connection = models.ForeignKey(
        "integrations.Connection",
        on_delete=models.CASCADE,
        related_name="remote_ids",
        db_index=False,
    )
    # Copy of record.record_type so that the uniqueness rule is one index.
    record_type = models.CharField(max_length=40)
    remote_id = models.CharField(max_length=255)
    remote_ref = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "connection", "record_type", "remote_id"],
                name="remoteid_unique_per_connection_and_type",
                violation_error_message="This remote id already belongs to another record.",
            ),
            models.UniqueConstraint(
                fields=["tenant", "record", "connection"],
                name="remoteid_unique_connection_per_record",
                violation_error_message="This record already has an id in this connection.",
            ),
            models.CheckConstraint(
                condition=~Q(remote_id="")
                & ~Q(remote_id__regex=CONTROL_CHARACTERS_PATTERN)
                & ~Q(remote_ref__regex=CONTROL_CHARACTERS_PATTERN),
                name="remoteid_not_empty_no_control_characters",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "connection", "record_type", "remote_ref"],
                name="remoteid_ref_lookup_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.remote_id


class RemoteIdFingerprint(TenantOwnedModel):
    """What a remote id was when first seen: on which record, with which ref, since when.

    Written by records.changes with every remote id it writes. A person's change (a user
    actor) sets it anew; a sync's (a connection or system actor) keeps it, and when that write
    puts the id on another record, or changes a ref it had to another value, `reused_at` is
    set: the remote system probably reused the id after a wipe (references.findings).
    """

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE, db_index=False)
    connection = models.ForeignKey(
        "integrations.Connection", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    record_type = models.CharField(max_length=40)
    remote_id = models.CharField(max_length=255)
    # The record it was first seen on; no database key (a merged record may be deleted, and
    # the local id below still names it).
    record = TenantForeignKey(
        Record, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    local_id = models.CharField(max_length=32)
    remote_ref = models.CharField(max_length=255, blank=True, default="")
    first_seen = models.DateTimeField(default=timezone.now)
    # Set when a sync moved the id to another record or changed its ref; cleared by a
    # person's change or by acknowledging it.
    reused_at = models.DateTimeField(null=True, blank=True)
    reused_by = models.CharField(max_length=300, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=300, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "connection", "record_type", "remote_id"],
                name="fingerprint_unique_remote_id",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "record_type", "reused_at"],
                name="fingerprint_reused_idx",
                condition=Q(reused_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.remote_id} first seen on {self.local_id}"


class RefusedWrite(TenantOwnedModel):
    """A connector's write the API refused because another record holds the id (a 409).

    The strongest sign of a remote reset refdesk receives: the remote system hands out an id
    again that refdesk still holds for an older record. Written by records.refusals after the
    refused request's transaction ended (so its rollback does not take it along), kept 30
    days and at most REFUSALS_KEPT per connection. Read by the record page, Health's finding,
    the forecast and the incident detector (references.findings).
    """

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE, db_index=False)
    connection = models.ForeignKey(
        "integrations.Connection", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    record_type = models.CharField(max_length=40)
    remote_id = models.CharField(max_length=255)
    remote_ref = models.CharField(max_length=255, blank=True, default="")
    # The record the connector wrote the id onto (None: it was creating one).
    record = TenantForeignKey(
        Record, on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    # The record that holds the id.
    holder = TenantForeignKey(Record, on_delete=models.CASCADE, related_name="+", db_index=False)
    actor = models.CharField(max_length=300)
    refused_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-refused_at", "-id"]
        indexes = [
            # Counting and pruning per connection, newest first.
            models.Index(
                fields=["tenant", "connection", "record_type", "-refused_at"],
                name="refused_connection_idx",
            ),
            # The record page: refusals of the id it holds, and of writes onto it.
            models.Index(fields=["tenant", "holder"], name="refused_holder_idx"),
            models.Index(
                fields=["tenant", "record"],
                name="refused_record_idx",
                condition=Q(record__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.remote_id} refused at {self.refused_at:%Y-%m-%d %H:%M}"


class CustomData(TenantOwnedModel):
    class Type(models.TextChoices):
        STRING = "string", "string"
        BOOL = "bool", "bool"
        INTEGER = "integer", "integer"
        DECIMAL = "decimal", "decimal"
        JSON = "json", "json"

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    record = TenantForeignKey(Record, on_delete=models.CASCADE, related_name="custom_data")
    connection = models.ForeignKey(
        "integrations.Connection",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="custom_data",
        help_text="Empty when the entry is not scoped to one connection.",
    )
    module_id = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    type = models.CharField(max_length=10, choices=Type.choices)
    # The parsed value: str, bool, int, a decimal as its exact string, or any JSON.
    value = models.JSONField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["connection_id", "module_id", "key"]
        verbose_name_plural = "custom data"
        constraints = [
            # Two partial indexes rather than NULLS NOT DISTINCT: that holds on SQLite too.
            models.UniqueConstraint(
                fields=["tenant", "record", "connection", "module_id", "key"],
                condition=Q(connection__isnull=False),
                name="customdata_unique_key_per_connection",
                violation_error_message="This record already has this custom data key.",
            ),
            models.UniqueConstraint(
                fields=["tenant", "record", "module_id", "key"],
                condition=Q(connection__isnull=True),
                name="customdata_unique_unscoped_key",
                violation_error_message="This record already has this custom data key.",
            ),
            models.CheckConstraint(
                condition=~Q(module_id="")
                & ~Q(key="")
                & ~Q(module_id__contains="|")
                & ~Q(key__contains="|"),
                name="customdata_module_and_key_without_pipe",
            ),
            models.CheckConstraint(
                condition=Q(type__in=["string", "bool", "integer", "decimal", "json"]),
                name="customdata_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.full_key

    @property
    def connection_key(self) -> str:
        return self.connection.connection_id if self.connection_id else ""

    @property
    def full_key(self) -> str:
        return f"{self.connection_key}|{self.module_id}|{self.key}"


class Batch(EngineWrittenModel):
    """One applied change set (records.changes): what it removed and added, so it can be undone."""

    class Kind(models.TextChoices):
        ADD = "add", "Add"
        EDIT = "edit", "Edit"
        REVERT = "revert", "Revert"
        DELETE = "delete", "Delete"
        DELETE_ALL = "delete_all", "Delete all"
        IMPORT = "import", "Import"
        LINK_SUGGESTIONS = "link_suggestions", "Accept suggested links"
        API = "api", "API write"
        SYNC = "sync", "Sync"
        RELINK = "relink", "Put back lost links"
        DUPLICATES = "duplicates", "Merge duplicates"
        UNLINK_REUSED = "unlink_reused", "Unlink reused ids"
        RECONCILE = "reconcile", "Reconcile"

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.SET_NULL, null=True, blank=True
    )
    record_type = models.CharField(max_length=40, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    description = models.CharField(max_length=300, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_by = models.CharField(max_length=300, blank=True)
    # What restoring needs beyond the BatchChange rows: records the batch created
    # ("created_record_ids", deleted again when left without ids) or removed
    # ("removed_records": snapshots put back with the same local_id).
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="batch_recent_idx")]

    def __str__(self) -> str:
        return self.description or f"{self.get_kind_display()} ({self.row_count})"

    @property
    def is_restored(self) -> bool:
        return self.restored_at is not None


# Removals that were the point of a fix (the id is gone remotely, or belongs to something
# else now): what they unlinked is not "lost", and putting it back would undo the fix.
DELIBERATE_REMOVALS = (Batch.Kind.RECONCILE, Batch.Kind.UNLINK_REUSED)


class BatchChange(EngineWrittenModel):
    """A remote-id row a batch removed or added: what restoring the batch puts back or takes away.

    Written set-based (INSERT ... SELECT), so a delete-all of a million rows is two statements.
    """

    class Change(models.TextChoices):
        REMOVED = "removed", "Removed"
        ADDED = "added", "Added"

    # No database foreign keys (db_constraint=False): a delete-all writes 256k of these rows
    # and PostgreSQL checked 4 keys per row at commit. Deletes still cascade (Django's
    # collector does that, not the database; nothing deletes these parents with raw SQL),
    # and restoring puts rows back through RemoteId, whose own foreign keys check them.
    # One index besides the primary key and record_id (the history): (tenant, batch, change).
    # A delete-all writes 256k of these rows and every index is written for each.
    tenant = models.ForeignKey(
        "integrations.Tenant", on_delete=models.CASCADE, db_constraint=False, db_index=False
    )
    batch = TenantForeignKey(
        Batch,
        on_delete=models.CASCADE,
        related_name="changes",
        db_constraint=False,
        db_index=False,
    )
    change = models.CharField(max_length=10, choices=Change.choices)
    record = TenantForeignKey(
        Record, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    connection = models.ForeignKey(
        "integrations.Connection",
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    record_type = models.CharField(max_length=40)
    remote_id = models.CharField(max_length=255)
    remote_ref = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["tenant", "batch", "change"], name="batchchange_batch_idx")]

    def __str__(self) -> str:
        return f"{self.change} {self.remote_id}"


class AuditEntry(TenantOwnedModel):
    """Who changed which remote id or custom data, when, and the values before and after."""

    class Action(models.TextChoices):
        ADD = "add", "Added reference"
        EDIT = "edit", "Edited reference"
        DELETE = "delete", "Deleted reference"
        DELETE_ALL = "delete_all", "Deleted all references"
        IMPORT = "import", "Imported references"
        RESTORE = "restore", "Restored"
        REVERT = "revert", "Reverted reference"
        LINK = "link", "Linked suggested record"
        RELINK = "relink", "Put back lost link"
        MERGE = "merge", "Merged duplicate"
        ACKNOWLEDGE = "acknowledge", "Acknowledged reused id"
        RECONCILE = "reconcile", "Reconciled with a remote export"
        RECORD_CREATE = "record_create", "Created record"
        RECORD_UPDATE = "record_update", "Updated record"
        REMOTE_ID_SET = "remote_id_set", "Set remote id"
        CUSTOM_DATA_SET = "custom_data_set", "Set custom data"
        CUSTOM_DATA_DELETE = "custom_data_delete", "Deleted custom data"
        RETRY_SYNC = "retry_sync", "Retried sync"

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=300)
    action = models.CharField(max_length=24, choices=Action.choices)
    # Bulk actions write one entry for the whole batch with no record.
    record = TenantForeignKey(
        Record, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    local_id = models.CharField(max_length=32, blank=True)
    record_type = models.CharField(max_length=40, blank=True)
    connection = models.ForeignKey(
        "integrations.Connection", on_delete=models.SET_NULL, null=True, blank=True
    )
    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.SET_NULL, null=True, blank=True
    )
    batch = TenantForeignKey(
        Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    summary = models.CharField(max_length=500, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["tenant", "record", "-created_at"], name="audit_record_idx"),
            models.Index(fields=["tenant", "-created_at"], name="audit_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.local_id}"


class Job(TenantOwnedModel):
    """A big change set applied in the background (records/jobs.py), with its progress.

    The state moves queued -> running -> done or failed. "Done" is written in the same
    transaction as the change set's rows, so a job is done exactly when its writes are there;
    progress is written beside that transaction, so the page can show it while it runs.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    kind = models.CharField(max_length=40, help_text="A job kind registered in records.jobs.")
    params = models.JSONField(default=dict, blank=True)
    description = models.CharField(max_length=300)
    actor = models.CharField(max_length=300, help_text="Who started it, in {type}/{id} form.")
    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.SET_NULL, null=True, blank=True
    )
    record_type = models.CharField(max_length=40, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    phase = models.CharField(max_length=100, blank=True)
    done = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    batch = TenantForeignKey(
        Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    result = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    # The worker that claimed it (`host:pid:token`): claiming is one UPDATE that only a queued,
    # unclaimed job passes, so a task delivered twice runs once (records/jobs.py).
    worker = models.CharField(max_length=200, blank=True, default="", db_default="")
    # Failed because its worker died (or the database went away), not because of what it does:
    # nothing was written, and `manage.py jobs --restart` queues it again.
    restartable = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="job_recent_idx"),
            models.Index(
                fields=["tenant", "integration", "record_type", "-created_at"],
                name="job_tab_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["queued", "running", "done", "failed"]),
                name="job_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.description

    @property
    def is_active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return min(100, 100 * self.done // self.total) if self.total else 0

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def seconds_left(self) -> int | None:
        """A plain estimate from the pace so far; None until there is a pace to go by."""
        if self.state != self.State.RUNNING or not self.done or not self.total:
            return None
        elapsed = (timezone.now() - self.started_at).total_seconds() if self.started_at else 0
        return max(1, round(elapsed * (self.total - self.done) / self.done))

    @property
    def is_stalled(self) -> bool:
        """Running, but no sign of life for a long time: its worker has probably stopped.

        Nothing of it is written until it is done, so a stopped job leaves nothing behind.
        """
        last = self.heartbeat_at or self.started_at
        return (
            self.state == self.State.RUNNING
            and last is not None
            and timezone.now() - last > STALLED_AFTER
        )


STALLED_AFTER = timedelta(minutes=15)


class ReferenceCount(EngineWrittenModel):
    """Linked, unlinked and lost references of one integration and entity type, kept exact by
    the change engine in the same transaction as every change (records.counts), so no page
    counts a million rows."""

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE)
    record_type = models.CharField(max_length=40)
    linked = models.BigIntegerField(default=0)
    unlinked = models.BigIntegerField(default=0)
    # Unlinked rows whose target id a change removed (a subset of unlinked).
    lost = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "integration", "record_type"], name="referencecount_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.record_type}: {self.linked} linked, {self.unlinked} unlinked"

# References are not stored on their own: they are pairs of records.RemoteId rows
# (docs/architecture.md).
import contextlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.citus.tables import fan_out_allowed
from integrations.models import TenantQuerySet
from integrations.tenant_keys import TenantForeignKey, TenantOwnedModel
from records.models import Job

UNFINISHED_JOB_STATES = (Job.State.QUEUED, Job.State.RUNNING)


def new_upload_token() -> str:
    return secrets.token_urlsafe(24)


class Upload(TenantOwnedModel):
    """A CSV file uploaded to a References tab, read once into line rows and kept for a day.

    The text itself is never kept: the upload request streams the file's lines into a line
    table (COPY on PostgreSQL), so any server can read what another received and no request
    holds the whole file. Only the uploader's tenant sees it; `purge_expired` deletes what
    is left of uploads nobody finished (`manage.py purge_uploads`, run on a schedule).
    """

    KEPT_FOR = timedelta(days=1)

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE)
    record_type = models.CharField(max_length=40)
    # Unique within its tenant (a key of a tenant-owned table includes tenant_id: Citus).
    token = models.CharField(max_length=40, default=new_upload_token, editable=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    filename = models.CharField(max_length=255, blank=True)
    size = models.PositiveIntegerField(default=0)
    line_count = models.PositiveIntegerField(default=0, help_text="Lines read from the file.")
    counts = models.JSONField(default=dict, blank=True, help_text="Lines per outcome.")
    job = TenantForeignKey(
        "records.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The background job working on this file, when it is large.",
    )
    batch = TenantForeignKey(
        "records.Batch",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The batch that applied this file (or its fix), once applied.",
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "token"], name="%(app_label)s_%(class)s_unique_token"
            ),
        ]

    def __str__(self) -> str:
        return self.filename or self.token

    @classmethod
    def purge_expired(cls, tenant=None, *, now=None) -> int:
        """Delete uploads older than KEPT_FOR (of one tenant, or of all) with their lines,
        except those a job is still working on; returns how many went."""
        expired = (cls.objects.for_tenant(tenant) if tenant else cls.objects.all()).filter(
            created_at__lt=(now or timezone.now()) - cls.KEPT_FOR
        )
        # For all tenants: one periodic statement over every shard (FAN_OUT_ALLOWED).
        with contextlib.nullcontext() if tenant else fan_out_allowed():
            deleted, by_model = expired.exclude(job__state__in=UNFINISHED_JOB_STATES).delete()
        return by_model.get(cls._meta.label, 0)


class ImportUpload(Upload):
    """A references CSV between its preview (dry run) and its apply.

    Its lines (ImportLine) carry the file's values and, once planned, each line's outcome:
    the preview pages through them; the apply plans the same values again, never anything
    taken from the browser.
    """

    ignored_columns = models.JSONField(default=list, blank=True)
    planned_at = models.DateTimeField(null=True, blank=True)

    class Meta(Upload.Meta):
        indexes = [models.Index(fields=["tenant", "created_at"], name="importupload_recent_idx")]


class UploadLine(TenantOwnedModel):
    """A line table of an upload (ImportLine, ReconcileLine): its tenant, with no database
    foreign keys (db_constraint=False), as on BatchChange: an upload COPYs a million of these
    rows, and PostgreSQL checked two keys per row at commit (over 30 s). Deletes still cascade
    (Django's collector does that, and only our code writes them). Each declares its `upload`."""

    tenant = models.ForeignKey(
        "integrations.Tenant",
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


class ImportLine(UploadLine):
    """One line of an uploaded references CSV: what it says, then what the plan made of it."""

    class Kind(models.TextChoices):
        NEW = "new", "New link"
        CHANGE = "changed", "Change"
        UNCHANGED = "unchanged", "Unchanged"
        REJECTED = "rejected", "Rejected"

    upload = TenantForeignKey(
        ImportUpload,
        on_delete=models.CASCADE,
        related_name="lines",
        db_constraint=False,
        db_index=False,  # the indexes below start with it
    )
    line = models.PositiveIntegerField()
    # As the file says (trimmed): what the apply plans again.
    source_id = models.TextField(blank=True)
    target_id = models.TextField(blank=True)
    source_ref = models.TextField(blank=True)
    target_ref = models.TextField(blank=True)
    problem = models.TextField(
        blank=True, db_default="", help_text="Why the line is not a row of the file."
    )
    # The plan ("" until planned) and what the preview shows of it. Database defaults, so the
    # upload's COPY names only the columns above.
    kind = models.CharField(max_length=10, choices=Kind.choices, blank=True, db_default="")
    reason = models.TextField(blank=True, db_default="")
    # Shares an id with another line, or moves an id another line wants: planned together.
    entangled = models.BooleanField(db_default=False)
    shown_source_ref = models.TextField(blank=True, db_default="")
    shown_target_ref = models.TextField(blank=True, db_default="")
    source_known = models.BooleanField(db_default=False, help_text="The source knows the id.")
    source_ref_changes = models.BooleanField(db_default=False)
    target_now_id = models.TextField(
        blank=True, db_default="", help_text="The record's target id now."
    )
    target_now_ref = models.TextField(blank=True, db_default="")

    class Meta:
        indexes = [
            models.Index(fields=["upload", "kind", "line"], name="importline_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.line}: {self.source_id} -> {self.target_id}"


class ReconcileUpload(Upload):
    """A remote system's export (its ids, optionally refs), compared with refdesk's links.

    The file is read once into ReconcileLine rows, classified there, and kept only as long as
    its report (deleted with it; reports expire after a day like import uploads).
    """

    class Side(models.TextChoices):
        SOURCE = "source", "Source"
        TARGET = "target", "Target"

    side = models.CharField(max_length=10, choices=Side.choices, default=Side.TARGET)
    compared_at = models.DateTimeField(null=True, blank=True)
    # The file's header and which of its columns is the id, the ref and the match key
    # (detected at upload; the person may choose others and compare again).
    columns = models.JSONField(default=list, blank=True, help_text="The file's column names.")
    id_column = models.PositiveSmallIntegerField(default=0)
    ref_column = models.PositiveSmallIntegerField(null=True, blank=True)
    key_column = models.PositiveSmallIntegerField(null=True, blank=True)
    coverage = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the file covers: its ids, their numeric range, and how many of this "
        "integration's links on its side it shows.",
    )

    class Meta(Upload.Meta):
        indexes = [models.Index(fields=["tenant", "created_at"], name="reconcile_recent_idx")]


class ReconcileLine(UploadLine):
    """One finding of a reconcile report: a line of the file, or a link the file lacks."""

    class Kind(models.TextChoices):
        # Lines of the file.
        OK = "ok", "Agree"
        REUSED = "reused", "Reused ids"
        REF_DIFFERS = "ref_differs", "Ref changed"
        MATCHED = "matched", "New, matching a record"
        UNKNOWN = "unknown", "New, no match"
        TWICE = "twice", "Twice in the file"
        # Ids refdesk holds on the file's side that the file lacks.
        STALE = "stale", "Gone remotely"
        GONE_SHARED = "gone_shared", "Linked in another integration"
        NOT_LINKED = "not_linked", "Not linked in this integration"

    upload = TenantForeignKey(
        ReconcileUpload,
        on_delete=models.CASCADE,
        related_name="lines",
        db_constraint=False,
        db_index=False,  # the indexes below start with it
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.OK)
    line = models.PositiveIntegerField(help_text="Line of the file; 0 for a link it lacks.")
    remote_id = models.CharField(max_length=255)
    file_ref = models.CharField(max_length=255, blank=True)
    known_ref = models.CharField(max_length=255, blank=True)
    # The record holding the id here (stale, ref differs, reused), or the unlinked one it
    # matches (matched).
    record_id = models.BigIntegerField(null=True, blank=True)
    # Every cell of the line, so any column can be the ref or the key on a new comparison.
    cells = models.JSONField(default=list, blank=True)
    file_key = models.CharField(max_length=255, blank=True)
    # A reused id: the unlinked record its key matches (None when none or several do).
    match_record_id = models.BigIntegerField(null=True, blank=True)
    # Gone, linked in another integration: that integration.
    shared_integration_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["upload", "kind", "line", "id"], name="reconcileline_kind_idx"),
            models.Index(fields=["upload", "remote_id"], name="reconcileline_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.remote_id}"


class HealthScan(TenantOwnedModel):
    """A finding computed by a job, for an integration too large to compute it per page view.

    Probable duplicates and second target records compare keys over every record only the
    target knows: 300 ms at a million references. references.findings computes them live on
    smaller data and from the latest scan on larger data ("as of 10:42", with Scan now).
    """

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE)
    record_type = models.CharField(max_length=40)
    finding = models.CharField(max_length=20)
    computed_at = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField(default=0)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "integration", "record_type", "finding"],
                name="healthscan_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.finding} of {self.record_type} as of {self.computed_at}"


class HealthScanRow(TenantOwnedModel):
    """One pair a scan found, by remote id row: the target's duplicate, the source record's
    row and (second target records) the target row it is linked to. A row fixed since no
    longer exists, so it drops out of the list without a new scan."""

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE, related_name="+")
    scan = TenantForeignKey(HealthScan, on_delete=models.CASCADE, related_name="rows")
    remote_id_pk = models.BigIntegerField()
    source_pk = models.BigIntegerField()
    linked_pk = models.BigIntegerField(null=True, blank=True)
    key = models.CharField(max_length=255, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["scan", "remote_id_pk"], name="healthscanrow_idx")]

    def __str__(self) -> str:
        return str(self.remote_id_pk)

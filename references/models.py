# References are not stored on their own: they are pairs of records.RemoteId rows
# (docs/architecture.md).
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models import TenantQuerySet


def new_upload_token() -> str:
    return secrets.token_urlsafe(24)


class ImportUpload(models.Model):
    """A CSV file between its preview (dry run) and its apply.

    Kept in the database, not on an app server's disk, so any server can apply what another
    previewed. Only the uploader sees it, on its tenant, integration and entity type; the
    plan is computed again from the file on apply, never taken from the browser.
    """

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE)
    record_type = models.CharField(max_length=40)
    token = models.CharField(max_length=40, unique=True, default=new_upload_token, editable=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    filename = models.CharField(max_length=255, blank=True)
    size = models.PositiveIntegerField(default=0)
    text = models.TextField(help_text="The file decoded as UTF-8 (BOM removed).")
    batch = models.ForeignKey(
        "records.Batch",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The batch that applied this file, once applied.",
    )
    job = models.ForeignKey(
        "records.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The background job applying this file, when it is large.",
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "created_at"], name="importupload_recent_idx")]

    def __str__(self) -> str:
        return self.filename or self.token


class ReconcileUpload(models.Model):
    """A remote system's export (its ids, optionally refs), compared with refdesk's links.

    The file is read once into ReconcileLine rows, classified there, and kept only as long as
    its report (deleted with it; reports expire after a day like import uploads).
    """

    class Side(models.TextChoices):
        SOURCE = "source", "Source"
        TARGET = "target", "Target"

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE)
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE)
    record_type = models.CharField(max_length=40)
    side = models.CharField(max_length=10, choices=Side.choices, default=Side.TARGET)
    token = models.CharField(max_length=40, unique=True, default=new_upload_token, editable=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    filename = models.CharField(max_length=255, blank=True)
    size = models.PositiveIntegerField(default=0)
    text = models.TextField(blank=True, help_text="The file until it is compared, then empty.")
    line_count = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True, help_text="Lines per class.")
    compared_at = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey(
        "records.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    batch = models.ForeignKey(
        "records.Batch",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The batch that applied the fix, once applied.",
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "created_at"], name="reconcile_recent_idx")]

    def __str__(self) -> str:
        return self.filename or self.token


class ReconcileLine(models.Model):
    """One finding of a reconcile report: a line of the file, or a link the file lacks."""

    class Kind(models.TextChoices):
        STALE = "stale", "Linked, but gone remotely"
        MATCHED = "matched", "Unknown here, matches an unlinked record"
        UNKNOWN = "unknown", "Unknown here"
        REF_DIFFERS = "ref_differs", "Ref differs"
        TWICE = "twice", "Twice in the file"
        OK = "ok", "Agrees"

    upload = models.ForeignKey(ReconcileUpload, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.OK)
    line = models.PositiveIntegerField(help_text="Line of the file; 0 for a link it lacks.")
    remote_id = models.CharField(max_length=255)
    file_ref = models.CharField(max_length=255, blank=True)
    known_ref = models.CharField(max_length=255, blank=True)
    # The record holding the id here (stale, ref differs), or the unlinked one it matches.
    record_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["upload", "kind", "line", "id"], name="reconcileline_kind_idx"),
            models.Index(fields=["upload", "remote_id"], name="reconcileline_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.remote_id}"


class HealthScan(models.Model):
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
                fields=["integration", "record_type", "finding"], name="healthscan_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.finding} of {self.record_type} as of {self.computed_at}"


class HealthScanRow(models.Model):
    """One pair a scan found, by remote id row: the target's duplicate, the source record's
    row and (second target records) the target row it is linked to. A row fixed since no
    longer exists, so it drops out of the list without a new scan."""

    scan = models.ForeignKey(HealthScan, on_delete=models.CASCADE, related_name="rows")
    remote_id_pk = models.BigIntegerField()
    source_pk = models.BigIntegerField()
    linked_pk = models.BigIntegerField(null=True, blank=True)
    key = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [models.Index(fields=["scan", "remote_id_pk"], name="healthscanrow_idx")]

    def __str__(self) -> str:
        return str(self.remote_id_pk)

# References are not stored on their own: they are pairs of records.RemoteId rows (DESIGN.md).
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

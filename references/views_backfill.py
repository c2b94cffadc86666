"""Backfill pages: CSV import (upload, dry-run preview, apply with progress), CSV export,
suggested links, and undo of the batches they write. Logic lives in imports.py, exports.py,
suggestions.py and services.py; these views only wire requests to them.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import TemplateView, View

from common.entities import EntityType, record_type_of, slug_of
from common.errors import DomainError
from integrations.models import Integration
from integrations.tenancy import TenantMixin
from records import jobs
from records.counts import counts_of
from records.models import AuditEntry, Batch
from records.services import Actor

from . import exports, health, imports, suggestions
from .models import ImportUpload
from .services import restore_batch, start_restore_job

SHOWN_ROWS = 200  # rejected rows / changes listed on the preview
UPLOADS_KEPT_FOR = timedelta(days=1)


class _ResolveIntegration:
    """Between tenancy and the handler: the integration and entity of the URL, then the role.

    An integration of another tenant (or an entity it does not sync) is a 404 before any role
    check, so a support user learns nothing from a 403 either.
    """

    admin_only = False

    def dispatch(self, request, *args, **kwargs):
        self.integration = get_object_or_404(
            Integration.objects.for_tenant(request.tenant).select_related(
                "tenant", "source__connector", "target__connector"
            ),
            pk=kwargs["integration_id"],
        )
        self.entity = kwargs["entity"]
        self.record_type = record_type_of(self.entity)
        if self.record_type not in self.integration.synced_entity_types:
            raise Http404("This integration does not sync that entity type.")
        if self.admin_only and not request.membership.is_admin:
            raise PermissionDenied("Only tenant admins may do this.")
        return super().dispatch(request, *args, **kwargs)


class BackfillMixin(TenantMixin, _ResolveIntegration):
    @property
    def actor(self) -> Actor:
        return Actor.for_user(self.request.user)

    @cached_property
    def kwargs_for_urls(self) -> dict:
        return {
            "tenant_slug": self.tenant.slug,
            "integration_id": self.integration.pk,
            "entity": self.entity,
        }

    def url(self, name: str, **extra) -> str:
        return reverse(f"references:{name}", kwargs={**self.kwargs_for_urls, **extra})

    def references_url(self) -> str:
        return self.url("list")

    def get_context_data(self, **kwargs):
        kwargs.update(
            integration=self.integration,
            record_type=self.record_type,
            entity=self.entity,
            entity_label=EntityType(self.record_type).label,
            references_url=self.references_url(),
            is_admin=self.request.membership.is_admin,
        )
        return super().get_context_data(**kwargs)


def undo_form(request, batch: Batch, label: str = "Undo", *, next_url: str = "") -> str:
    """The Undo button of a toast; after undoing it returns to `next_url` (default: here)."""
    url = reverse(
        "references:backfill-undo",
        kwargs={
            "tenant_slug": batch.tenant.slug,
            "integration_id": batch.integration_id,
            "entity": slug_of(batch.record_type),
            "batch_id": batch.pk,
        },
    )
    return format_html(
        '<form method="post" action="{}" class="inline">'
        '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
        '<input type="hidden" name="next" value="{}">'
        '<button type="submit" class="btn btn-small">{}</button></form>',
        url,
        get_token(request),
        next_url or request.get_full_path(),
        label,
    )


# --- import ----------------------------------------------------------------------------------


class ImportView(BackfillMixin, TemplateView):
    """GET: the upload form, or the dry-run preview of an uploaded file (?upload=<token>).
    POST: read and check the file, keep it for the preview, redirect to the preview."""

    admin_only = True
    template_name = "references/import.html"

    def uploads(self):
        return ImportUpload.objects.for_tenant(self.tenant).filter(
            integration=self.integration,
            record_type=self.record_type,
            uploaded_by=self.request.user,
        )

    def get(self, request, *args, **kwargs):
        token = request.GET.get("upload")
        if not token:
            return self.render_to_response(self.get_context_data())
        upload = get_object_or_404(self.uploads().select_related("batch", "job"), token=token)
        if upload.batch_id:
            return self.render_to_response(self.applied_context(upload))
        try:
            plan = imports.plan_text(self.integration, self.record_type, upload.text)
        except DomainError as error:
            return self.render_to_response(self.get_context_data(error=error.message), status=422)
        return self.render_to_response(self.preview_context(upload, plan))

    def post(self, request, *args, **kwargs):
        uploaded = request.FILES.get("file")
        if uploaded is None:
            return self.render_to_response(
                self.get_context_data(error="Choose a CSV file to upload."), status=422
            )
        try:
            text = imports.read_upload(uploaded)
            imports.parse_csv(text)
        except DomainError as error:
            return self.render_to_response(
                self.get_context_data(error=error.message, filename=uploaded.name), status=422
            )
        ImportUpload.objects.for_tenant(self.tenant).filter(
            created_at__lt=timezone.now() - UPLOADS_KEPT_FOR
        ).exclude(job__state__in=jobs.ACTIVE).delete()
        upload = ImportUpload.objects.create(
            tenant=self.tenant,
            integration=self.integration,
            record_type=self.record_type,
            uploaded_by=request.user,
            filename=uploaded.name[:255],
            size=uploaded.size,
            text=text,
        )
        return HttpResponseRedirect(f"{self.url('import')}?upload={upload.token}")

    def get_context_data(self, **kwargs):
        recent = (
            Batch.objects.for_tenant(self.tenant)
            .filter(
                integration=self.integration,
                record_type=self.record_type,
                kind=Batch.Kind.IMPORT,
            )
            .order_by("-created_at", "-id")[:5]
        )
        return super().get_context_data(
            max_mb=imports.max_upload_bytes() // 1_048_576, recent=recent, **kwargs
        )

    def preview_context(self, upload, plan):
        rejected = plan.of(imports.Kind.REJECTED)
        changes = plan.of(imports.Kind.CHANGE)
        new = plan.of(imports.Kind.NEW)
        return self.get_context_data(
            upload=upload,
            plan=plan,
            counts=plan.counts,
            to_write=len(new) + len(changes),
            rejected=rejected[:SHOWN_ROWS],
            rejected_more=max(0, len(rejected) - SHOWN_ROWS),
            changes=changes[:SHOWN_ROWS],
            changes_more=max(0, len(changes) - SHOWN_ROWS),
            new=new[:50],
            new_more=max(0, len(new) - 50),
            apply_url=self.url("import-apply"),
            job=upload.job,
            forecast_after=self.forecast_after(new),
        )

    def forecast_after(self, new) -> str:
        """The Health page's forecast for after the import: the unlinked records it links
        are no longer created by the next sync."""
        linked_now = sum(1 for row in new if row.source_row is not None and not row.target_row)
        unlinked = counts_of(self.integration, self.record_type).unlinked
        return health.creates_after(
            self.integration, self.record_type, max(0, unlinked - linked_now)
        )

    def applied_context(self, upload):
        batch = upload.batch
        entry = AuditEntry.objects.for_tenant(self.tenant).filter(
            batch=batch, action=AuditEntry.Action.IMPORT
        )
        counts = entry.values_list("after", flat=True).first() or {}
        return self.get_context_data(
            upload=upload,
            batch=batch,
            counts=counts,
            undo=undo_form(self.request, batch, "Undo this import")
            if not batch.is_restored
            else "",
        )


class ImportApplyView(BackfillMixin, View):
    """Apply an uploaded file: plan again and write in one transaction, then show the result."""

    admin_only = True

    def get(self, request, *args, **kwargs):
        return redirect(self.url("import"))  # a reload or a bookmark of the POST target

    def post(self, request, *args, **kwargs):
        upload = get_object_or_404(
            ImportUpload.objects.for_tenant(self.tenant).filter(
                integration=self.integration,
                record_type=self.record_type,
                uploaded_by=request.user,
            ),
            token=request.POST.get("upload", ""),
        )
        done_url = f"{self.url('import')}?upload={upload.token}"
        if upload.job_id and upload.job.is_active:
            return HttpResponseRedirect(done_url)  # already being applied
        rows = len(imports.parse_csv(upload.text).rows)
        if jobs.runs_as_job(rows):
            upload.job = jobs.start_job(
                "import",
                tenant=self.tenant,
                actor=self.actor,
                integration=self.integration,
                record_type=self.record_type,
                params={"upload_id": upload.pk},
                total=rows,
                description=f"Import {upload.filename or 'a CSV file'} ({rows:,} rows)",
            )
            upload.save(update_fields=["job"])
            return HttpResponseRedirect(done_url)
        try:
            imports.apply_import(
                self.integration,
                self.record_type,
                upload.text,
                self.actor,
                filename=upload.filename,
                upload=upload,
            )
        except DomainError as error:
            messages.error(request, error.message)
        return HttpResponseRedirect(done_url)


# --- undo ------------------------------------------------------------------------------------


class BackfillUndoView(BackfillMixin, View):
    """Restore a batch (an import, accepted suggestions...) of this integration and entity."""

    admin_only = True

    def get(self, request, *args, **kwargs):
        self.batch()  # another tenant's or integration's batch is a 404 here too
        return redirect(self.url("import"))

    def batch(self) -> Batch:
        return get_object_or_404(
            Batch.objects.for_tenant(self.tenant).select_related("tenant"),
            pk=self.kwargs["batch_id"],
            integration=self.integration,
            record_type=self.record_type,
        )

    def post(self, request, *args, **kwargs):
        batch = self.batch()
        if start_restore_job(batch, self.actor) is not None:
            messages.info(
                request,
                f"Undoing {batch.description} in the background ({batch.row_count:,} rows). "
                "You can leave this page.",
            )
            return HttpResponseRedirect(self.url("import"))
        try:
            restore_batch(batch, self.actor)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Undone: {batch.description}.")
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
            target = self.url("import")
        return HttpResponseRedirect(target)


# --- suggested links -------------------------------------------------------------------------


class SuggestionsView(BackfillMixin, TemplateView):
    """Unlinked source records with a target-only twin that carries the same human reference."""

    template_name = "references/suggestions.html"

    def get_context_data(self, **kwargs):
        fields = suggestions.match_fields(self.integration, self.record_type)
        field = self.request.GET.get("field") or suggestions.REMOTE_REF
        if field not in dict(fields):
            field = suggestions.REMOTE_REF
        found, total = suggestions.find_suggestions(self.integration, self.record_type, field)
        return super().get_context_data(
            fields=fields,
            field=field,
            field_label=dict(fields)[field],
            suggestions=found,
            total=total,
            accept_url=self.url("suggestions-accept"),
            **kwargs,
        )


class SuggestionsAcceptView(BackfillMixin, View):
    """Accept the posted pairs (one, or all shown) that still hold, as one restorable batch."""

    admin_only = True

    def get(self, request, *args, **kwargs):
        return redirect(self.url("suggestions"))

    def post(self, request, *args, **kwargs):
        field = request.POST.get("field") or suggestions.REMOTE_REF
        back = f"{self.url('suggestions')}?field={field}"
        try:
            field = suggestions.clean_field(self.integration, self.record_type, field)
            pairs = suggestions.parse_pairs(request.POST.getlist("pair"))
            batch = suggestions.accept_suggestions(
                self.integration, self.record_type, field, pairs, self.actor
            )
        except DomainError as error:
            messages.error(request, error.message)
            return redirect(back)
        skipped = len(pairs) - batch.row_count
        messages.success(
            request,
            format_html(
                "{}.{} {}",
                batch.description,
                f" {skipped} no longer applied and were left alone." if skipped else "",
                undo_form(request, batch),
            ),
        )
        return redirect(back)


# --- export ----------------------------------------------------------------------------------


class ExportView(BackfillMixin, View):
    """The References page's current filtered view as CSV in the import format, streamed."""

    def get(self, request, *args, **kwargs):
        rows = exports.export_rows(self.integration, self.record_type, request.GET)
        response = StreamingHttpResponse(exports.csv_lines(rows), content_type="text/csv")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        name = f"{self.integration.source.name}-{self.integration.target.name}-{self.entity}"
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name).lower()
        response["Content-Disposition"] = f'attachment; filename="{safe}-{stamp}.csv"'
        response["Cache-Control"] = "no-store"
        return response

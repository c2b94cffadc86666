"""Backfill pages: CSV import (upload, dry-run preview, apply with progress), CSV export and
suggested links. Logic lives in imports.py, exports.py and suggestions.py; these views only wire
requests to them. Their Undo buttons post to the one restore view (views_restore.py).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.html import format_html
from django.views.generic import TemplateView, View

from common.csvfile import csv_response
from common.errors import DomainError
from records import jobs
from records.counts import counts_of
from records.models import AuditEntry, Batch

from . import exports, imports, suggestions
from .findings.wording import creates_after
from .mixins import IntegrationMixin
from .models import ImportUpload
from .views_restore import undo_form

SHOWN_ROWS = 200  # rejected rows / changes listed on the preview
UPLOADS_KEPT_FOR = timedelta(days=1)


# --- import ----------------------------------------------------------------------------------


class ImportView(IntegrationMixin, TemplateView):
    """GET: the upload form, or the dry-run preview of an uploaded file (?upload=<token>).
    POST: read and check the file, keep it for the preview, redirect to the preview."""

    admin_required = True
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
        return creates_after(self.integration, self.record_type, max(0, unlinked - linked_now))

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


class ImportApplyView(IntegrationMixin, View):
    """Apply an uploaded file: plan again and write in one transaction, then show the result."""

    admin_required = True

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


# --- suggested links -------------------------------------------------------------------------


class SuggestionsView(IntegrationMixin, TemplateView):
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


class SuggestionsAcceptView(IntegrationMixin, View):
    """Accept the posted pairs (one, or all shown) that still hold, as one restorable batch."""

    admin_required = True

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


class ExportView(IntegrationMixin, View):
    """The References page's current filtered view as CSV in the import format, streamed."""

    def get(self, request, *args, **kwargs):
        rows = exports.export_rows(self.integration, self.record_type, request.GET)
        return csv_response(imports.COLUMNS, rows, name=("references", self.entity), bom=True)

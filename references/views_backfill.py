"""Backfill pages: CSV import (upload, dry-run preview, apply with progress), CSV export and
suggested links. Logic lives in imports.py, exports.py and suggestions.py; these views only wire
requests to them. Their Undo buttons post to the one restore view (views_restore.py).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.utils.html import format_html
from django.views.generic import TemplateView, View

from common.csvfile import csv_response
from common.errors import DomainError
from records import jobs
from records.counts import counts_of
from records.models import AuditEntry, Batch

from . import exports, import_uploads, imports, suggestions
from .findings.wording import creates_after
from .mixins import IntegrationMixin
from .models import ImportUpload
from .views_restore import undo_form

SHOWN_ROWS = 200  # rejected rows / changes listed on a page of the preview
SHOWN_NEW = 50


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
        return self.render_to_response(self.preview_context(upload))

    def post(self, request, *args, **kwargs):
        uploaded = request.FILES.get("file")
        if uploaded is None:
            return self.render_to_response(
                self.get_context_data(error="Choose a CSV file to upload."), status=422
            )
        ImportUpload.purge_expired(self.tenant)
        try:
            upload = import_uploads.store(
                self.integration, self.record_type, uploaded, request.user
            )
        except DomainError as error:
            return self.render_to_response(
                self.get_context_data(error=error.message, filename=uploaded.name), status=422
            )
        if import_uploads.plans_as_job(upload):
            upload.job = jobs.start_job(
                "import_plan",
                tenant=self.tenant,
                actor=self.actor,
                integration=self.integration,
                record_type=self.record_type,
                params={"upload_id": upload.pk},
                total=upload.line_count,
                description=f"Check {upload.filename or 'a CSV file'} "
                f"({upload.line_count:,} lines) for import",
            )
            upload.save(update_fields=["job"])
        else:
            import_uploads.plan_upload(upload)
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

    def preview_context(self, upload):
        """The stored plan of an upload, one page of each outcome (or the job planning it)."""
        if upload.planned_at is None:
            return self.get_context_data(upload=upload, job=upload.job, planning=True)
        counts = {kind: upload.counts.get(kind, 0) for kind in import_uploads.KINDS}
        after = self.after_line()
        sections = {
            name: self.preview_section(upload, kind, counts[kind], size, after.get(kind, 0))
            for name, kind, size in (
                ("rejected", imports.Kind.REJECTED, SHOWN_ROWS),
                ("changes", imports.Kind.CHANGE, SHOWN_ROWS),
                ("new", imports.Kind.NEW, SHOWN_NEW),
            )
        }
        return self.get_context_data(
            upload=upload,
            counts=counts,
            to_write=counts[imports.Kind.NEW] + counts[imports.Kind.CHANGE],
            sections=sections,
            apply_url=self.url("import-apply"),
            job=upload.job if upload.job and upload.job.kind == "import" else None,
            forecast_after=self.forecast_after(upload),
            **{name: section["rows"] for name, section in sections.items()},
        )

    def after_line(self) -> dict[str, int]:
        """Where a section's page starts: ?show=<outcome>&after=<line>."""
        after = self.request.GET.get("after", "")
        shown = self.request.GET.get("show", "")
        if shown not in import_uploads.KINDS or not after.isdigit() or len(after) > 9:
            return {}
        return {shown: int(after)}

    def preview_section(self, upload, kind: str, count: int, size: int, after: int) -> dict:
        rows = import_uploads.preview_lines(upload, kind, after=after, size=size)
        base = f"{self.url('import')}?upload={upload.token}&show={kind}"
        return {
            "rows": rows,
            "first_url": base if after else "",
            "next_url": f"{base}&after={rows[-1].line}" if len(rows) == size else "",
            "more": max(0, count - size) if not after else 0,
        }

    def forecast_after(self, upload) -> str:
        """The Health page's forecast for after the import: the unlinked records it links
        are no longer created by the next sync."""
        linked_now = upload.counts.get(import_uploads.LINKING_UNLINKED, 0)
        unlinked = counts_of(self.integration, self.record_type).unlinked
        return creates_after(self.integration, self.record_type, max(0, unlinked - linked_now))

    def applied_context(self, upload):
        batch = upload.batch
        entry = AuditEntry.objects.for_tenant(self.tenant).filter(
            batch=batch, action=AuditEntry.Action.IMPORT
        )
        counts = entry.values_list("after", flat=True).first() or {}
        # The refused lines stay after the apply (import_uploads.keep_rejected_lines), with
        # why each was refused, paged like the preview's.
        after = self.after_line().get(imports.Kind.REJECTED, 0)
        rejected = self.preview_section(
            upload, imports.Kind.REJECTED, counts.get(imports.Kind.REJECTED, 0), SHOWN_ROWS, after
        )
        return self.get_context_data(
            upload=upload,
            batch=batch,
            counts=counts,
            sections={"rejected": rejected},
            rejected=rejected["rows"],
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
        if upload.planned_at is None or (upload.job_id and upload.job.is_active):
            return HttpResponseRedirect(done_url)  # still being checked, or being applied
        rows = upload.line_count
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
            import_uploads.apply_upload(upload, self.actor)
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

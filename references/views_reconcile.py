"""Reconciliation with a remote export: upload it, read the report by class, preview and apply
the fix (one restorable batch, a background job when large), and a sample export to try it on.
Logic lives in reconcile.py; these views wire requests to it.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.utils.functional import cached_property
from django.views.generic import TemplateView, View

from common.csvfile import csv_response
from common.errors import DomainError
from common.paging import paged
from integrations.models import REMOTE_REF
from records import jobs
from records.models import Job, Record, RemoteId

from . import reconcile
from .models import ReconcileLine, ReconcileUpload
from .services import unlinked_source_rows
from .views_apply import PreviewApplyView
from .views_health import NEWEST_FIRST, PAGE_SIZE, HealthMixin


class ReconcileView(HealthMixin, TemplateView):
    """GET: the upload form and recent reports, or one report (?upload=<token>) by class.
    POST: keep the export and compare it (in the background when large)."""

    template_name = "references/reconcile.html"

    def uploads(self):
        return ReconcileUpload.objects.for_tenant(self.tenant).filter(
            integration=self.integration, record_type=self.record_type
        )

    def post(self, request, *args, **kwargs):
        if not request.membership.is_admin:
            raise PermissionDenied("Only tenant admins may upload exports.")
        uploaded = request.FILES.get("file")
        side = request.POST.get("side", ReconcileUpload.Side.TARGET)
        if uploaded is None:
            return self.render_to_response(
                self.get_context_data(error="Choose the CSV file to compare.", side=side),
                status=422,
            )
        try:
            upload = reconcile.start(
                self.integration, self.record_type, side, uploaded, request.user
            )
        except DomainError as error:
            return self.render_to_response(
                self.get_context_data(error=error.message, side=side), status=422
            )
        lines = upload.line_count
        if jobs.runs_as_job(lines):
            upload.job = jobs.start_job(
                "reconcile_compare",
                tenant=self.tenant,
                actor=self.actor,
                integration=self.integration,
                record_type=self.record_type,
                params={"upload_id": upload.pk},
                total=lines,
                description=f"Compare {upload.filename or 'a remote export'} "
                f"({lines:,} lines) with the {self.record_type} ids",
            )
            upload.save(update_fields=["job"])
        else:
            try:
                reconcile.compare(upload)
            except DomainError as error:
                upload.delete()
                return self.render_to_response(
                    self.get_context_data(error=error.message, side=side), status=422
                )
        return HttpResponseRedirect(f"{self.url('reconcile')}?upload={upload.token}")

    def get_context_data(self, **kwargs):
        token = self.request.GET.get("upload")
        if token:
            kwargs.update(self.report_context(token))
        else:
            kwargs.setdefault("side", ReconcileUpload.Side.TARGET)
            kwargs["recent"] = list(self.uploads().select_related("uploaded_by")[:10])
        return super().get_context_data(
            sample_url=self.url("reconcile-sample"),
            fix_url=self.url("reconcile-fix"),
            **kwargs,
        )

    def report_context(self, token: str) -> dict:
        upload = get_object_or_404(
            self.uploads().select_related("job", "batch", "uploaded_by"), token=token
        )
        kind = self.request.GET.get("class") or ReconcileLine.Kind.STALE
        if kind not in reconcile.CLASSES:
            kind = ReconcileLine.Kind.STALE
        base = f"{self.url('reconcile')}?upload={upload.token}"
        lines = upload.lines.filter(kind=kind).order_by("-pk")
        page, after, before = paged(
            lines,
            NEWEST_FIRST,
            1,
            PAGE_SIZE,
            after=self.request.GET.get("after", ""),
            before=self.request.GET.get("before", ""),
        )
        records = {}
        ids = {line.record_id for line in page.rows if line.record_id}
        if ids:
            records = Record.objects.for_tenant(self.tenant).defer("data").in_bulk(ids)
        for line in page.rows:
            line.record = records.get(line.record_id)
        here = reconcile.side_connection(self.integration, upload.side)
        return {
            "upload": upload,
            "here": here,
            "classes": [
                {
                    "kind": value,
                    "label": ReconcileLine.Kind(value).label,
                    "count": upload.counts.get(value, 0),
                    "url": f"{base}&class={value}",
                    "current": value == kind,
                }
                for value in reconcile.CLASSES
            ],
            "kind": kind,
            "kind_label": ReconcileLine.Kind(kind).label,
            "lines": page.rows,
            "next_url": f"{base}&class={kind}&after={page.rows[-1].position}"
            if page.has_next and page.rows
            else "",
            "first_url": f"{base}&class={kind}" if (after or before) else "",
            "fixable": upload.counts.get("stale", 0) + upload.counts.get("matched", 0),
            "job_active": bool(upload.job_id and upload.job.is_active),
            "job_failed": bool(upload.job_id and upload.job.state == Job.State.FAILED),
        }


class ReconcileFixView(HealthMixin, PreviewApplyView):
    """The reconcile report's fix: preview (the engine's plan), then apply with `confirm`."""

    job_kind = "reconcile_apply"

    def get(self, request, *args, **kwargs):
        return redirect(self.url("reconcile"))

    @cached_property
    def upload(self) -> ReconcileUpload:
        return get_object_or_404(
            ReconcileUpload.objects.for_tenant(self.tenant).filter(
                integration=self.integration, record_type=self.record_type
            ),
            token=self.request.POST.get("upload", ""),
        )

    def change_set(self):
        return reconcile.fix_change_set(self.upload, self.actor)

    def back_url(self) -> str:
        return f"{self.url('reconcile')}?upload={self.upload.token}"

    def job_params(self) -> dict:
        return {"upload_id": self.upload.pk}

    def job_description(self, size: int) -> str:
        return (
            f"Reconcile {size:,} {self.record_type} ids "
            f"with {self.upload.filename or 'a remote export'}"
        )

    def preview_context(self) -> dict:
        return {
            "finding_label": "Reconcile",
            "action_label": "Remove the stale ids and link the matched ones",
            "confirm_fields": [("upload", self.upload.token)],
        }

    def started(self, job):
        """The report shows the job's progress."""
        self.upload.job = job
        self.upload.save(update_fields=["job"])
        return HttpResponseRedirect(self.back_url())

    def refused(self, plan) -> str:
        return "every change was refused."

    def done(self, applied):
        if applied.batch is not None:
            self.upload.batch = applied.batch
            self.upload.save(update_fields=["batch"])
        return super().done(applied)


class ReconcileSampleView(HealthMixin, View):
    """A sample export of this integration's side, with one line of every class: what a real
    export looks like, to try the reconcile page on."""

    def get(self, request, *args, **kwargs):
        # Anything but "source" is the target's export, as the page links it: the side in the
        # file's name is one of the two, never the parameter itself.
        side = "source" if request.GET.get("side") == ReconcileUpload.Side.SOURCE else "target"
        header, rows = sample_export(self.integration, self.record_type, side)
        return csv_response(header, rows, name=("sample", side, "export", self.entity))


def sample_export(integration, record_type: str, side: str) -> tuple[list[str], list[list]]:
    """The side's ids as its system would export them, with a few of each reconcile class:
    (header, rows)."""
    connection = reconcile.side_connection(integration, side)
    rows = list(
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(connection=connection, record_type=record_type)
        .order_by("pk")
        .values_list("remote_id", "remote_ref")[:200]
    )
    lines = []
    kept = rows[3:]  # the first three are gone remotely: stale
    for number, (remote_id, remote_ref) in enumerate(kept):
        if number == 0:
            remote_ref = (remote_ref or "") + " (renamed)"  # ref differs
        lines.append([remote_id, remote_ref])
        if number == 1:
            lines.append([remote_id, remote_ref])  # twice
    unlinked = list(
        unlinked_source_rows(integration, record_type).select_related("record").order_by("pk")[:3]
    )
    field = integration.match_key(record_type)
    for number, row in enumerate(unlinked):
        key = row.remote_ref if field == REMOTE_REF else row.record.data.get(field)
        if key not in (None, ""):
            lines.append([f"NEW-{number + 1}", key])  # matched: unknown here, same key
    lines.append(["NEW-UNKNOWN-1", ""])  # unknown
    return ["Id", "Reference"], lines

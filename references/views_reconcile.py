"""Reconciliation with a remote export: upload it, read the report by class, preview and apply
the fix (one restorable batch, a background job when large), and a sample export to try it on.
Logic lives in reconcile.py; these views wire requests to it.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.utils.functional import cached_property
from django.views.generic import TemplateView, View

from common.csvfile import csv_response
from common.errors import DomainError
from common.paging import paged
from integrations.models import REMOTE_REF
from records import jobs
from records.models import Job

from . import reconcile
from .findings.keys import key_label
from .models import ReconcileLine, ReconcileUpload
from .reconcile_sample import sample_export
from .views_apply import PreviewApplyView
from .views_health import NEWEST_FIRST, PAGE_SIZE, HealthMixin

Kind = ReconcileLine.Kind


class ReconcileView(HealthMixin, TemplateView):
    """GET: the upload form and recent reports, or one report (?upload=<token>) by class.
    POST: keep the export and compare it (in the background when large); with `upload`, the
    columns the person chose, and compare that export again."""

    template_name = "references/reconcile.html"

    def uploads(self):
        return ReconcileUpload.objects.for_tenant(self.tenant).filter(
            integration=self.integration, record_type=self.record_type
        )

    def post(self, request, *args, **kwargs):
        if not request.membership.is_admin:
            raise PermissionDenied("Only tenant admins may upload exports.")
        if request.POST.get("upload"):
            return self.compare_again(request.POST)
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
        return self.compared(upload)

    def compare_again(self, data):
        """The report's column choice: compare the same lines with other ref and key columns."""
        upload = get_object_or_404(self.uploads(), token=data.get("upload", ""))
        try:
            reconcile.choose_columns(
                upload, optional_int(data.get("ref_column")), optional_int(data.get("key_column"))
            )
        except DomainError as error:
            messages.error(self.request, error.message)
            return HttpResponseRedirect(f"{self.url('reconcile')}?upload={upload.token}")
        return self.compared(upload)

    def compared(self, upload):
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
            reconcile.compare(upload)
        return HttpResponseRedirect(f"{self.url('reconcile')}?upload={upload.token}")

    def get_context_data(self, **kwargs):
        token = self.request.GET.get("upload")
        if token:
            kwargs.update(report_context(self, token))
        else:
            # The incident sentence's button names the side that was reset (?side=source).
            asked = self.request.GET.get("side")
            side = asked if asked in ReconcileUpload.Side.values else ReconcileUpload.Side.TARGET
            kwargs.setdefault("side", side)
            kwargs["recent"] = list(self.uploads().select_related("uploaded_by")[:10])
        return super().get_context_data(
            sample_url=self.url("reconcile-sample"),
            fix_url=self.url("reconcile-fix"),
            match_key_label=key_label(self.integration.match_key(self.record_type)),
            **kwargs,
        )


def optional_int(value) -> int | None:
    return int(value) if value and str(value).isdigit() else None


# How each class reads in the report's sums ("1,642 agree + 2 reused + ...").
SUM_WORDS = {
    Kind.OK: "agree",
    Kind.REUSED: "reused",
    Kind.REF_DIFFERS: "ref changed",
    Kind.MATCHED: "new, matching an unlinked record",
    Kind.UNKNOWN: "new, no match",
    Kind.TWICE: "twice",
    Kind.STALE: "gone",
    Kind.GONE_SHARED: "linked in another integration",
    Kind.NOT_LINKED: "not linked in this integration",
}
CLASS_HELP = {
    Kind.OK: "The export shows the id with this record's ref or key: nothing to do.",
    Kind.REUSED: "refdesk links the id to one record, but the export shows it with the key of "
    "another: the remote system gave the id to another document (a reset?). The plan moves "
    "it to the record its key matches, when exactly one does; else it is listed, not fixed.",
    Kind.REF_DIFFERS: "Same id, another ref in the export, and no other record has that "
    "key: left as is. If the document behind the id changed, fix the link by hand.",
    Kind.MATCHED: "An id refdesk does not hold whose key is the key of exactly one unlinked "
    "record here: the plan links that record to it.",
    Kind.UNKNOWN: "An id refdesk does not hold, and no unlinked record has its key: "
    "left as is (the next sync may bring it).",
    Kind.TWICE: "The id is on more than one line of the file: left as is.",
    Kind.STALE: "Linked in this integration, not in the export. Removed only when you tick it "
    "(ticked for you when the file looks complete).",
    Kind.GONE_SHARED: "Not in the export, and linked in another integration that shares the "
    "connection: changed only if you tick it.",
    Kind.NOT_LINKED: "Not in the export, and not linked in this integration: the connection "
    "alone knows it. Never changed here.",
}


def report_context(view, token: str) -> dict:
    """One report: its coverage, its columns, its classes (with the sum), a page of the
    chosen class with the records named, and the plan's choices."""
    upload = get_object_or_404(
        view.uploads().select_related("job", "batch", "uploaded_by"), token=token
    )
    kind = view.request.GET.get("class") or ""
    if kind not in reconcile.CLASSES:
        kind = next((k for k in ATTENTION if upload.counts.get(k)), Kind.OK)
    base = f"{view.url('reconcile')}?upload={upload.token}"
    page, after, before = paged(
        upload.lines.filter(kind=kind).order_by("-pk"),
        NEWEST_FIRST,
        1,
        PAGE_SIZE,
        after=view.request.GET.get("after", ""),
        before=view.request.GET.get("before", ""),
    )
    names = reconcile.record_names(
        upload, {pk for line in page.rows for pk in (line.record_id, line.match_record_id)}
    )
    shared = shared_names(view, upload)
    for line in page.rows:
        line.record_name = names.get(line.record_id, "")
        line.match_name = names.get(line.match_record_id, "")
        line.shared_name = shared.get(line.shared_integration_id, "")
    counts = upload.counts

    def classes(kinds):
        return [
            {
                "kind": value,
                "label": Kind(value).label,
                "words": SUM_WORDS[value],
                "count": counts.get(value, 0),
                "url": f"{base}&class={value}",
                "current": value == kind,
                "attention": value in ATTENTION,
            }
            for value in kinds
        ]

    choice = reconcile.FixChoice.default(upload)
    shared_counts = shared_link_counts(upload, shared)
    return {
        "upload": upload,
        "report_url": base,
        "here": reconcile.side_connection(view.integration, upload.side),
        "there": reconcile.other_connection(view.integration, upload.side),
        "file_classes": classes(reconcile.FILE_CLASSES),
        "gone_classes": classes(reconcile.GONE_CLASSES),
        "file_sum": sum(counts.get(k, 0) for k in reconcile.FILE_CLASSES),
        "gone_sum": sum(counts.get(k, 0) for k in reconcile.GONE_CLASSES),
        "coverage": upload.coverage,
        "complete_percent": reconcile.COMPLETE_PERCENT,
        "columns": column_roles(view, upload),
        "kind": kind,
        "kind_label": Kind(kind).label,
        "kind_help": CLASS_HELP[kind],
        "lines": page.rows,
        "next_url": f"{base}&class={kind}&after={page.rows[-1].position}"
        if page.has_next and page.rows
        else "",
        "first_url": f"{base}&class={kind}" if (after or before) else "",
        "choice": choice,
        "reused_fixable": upload.lines.filter(
            kind=Kind.REUSED, match_record_id__isnull=False
        ).count(),
        "shared_counts": shared_counts,
        "fixable": reconcile.fixed_lines(upload, reconcile.FixChoice(True, True)).exists(),
        "job_active": bool(upload.job_id and upload.job.is_active),
        "job_failed": bool(upload.job_id and upload.job.state == Job.State.FAILED),
    }


# The classes a person should look at first, in this order.
ATTENTION = (Kind.REUSED, Kind.STALE, Kind.GONE_SHARED, Kind.MATCHED, Kind.REF_DIFFERS)


def shared_names(view, upload) -> dict[int, str]:
    here = reconcile.side_connection(view.integration, upload.side)
    return {
        other.pk: other.name
        for other, _ in reconcile.sharing_integrations(view.integration, here, upload.record_type)
    }


def shared_link_counts(upload, names: dict[int, str]) -> list[tuple[str, int]]:
    """("WooCommerce Outlet → Fortnox", 2): the gone or reused ids each other integration links."""
    rows = (
        upload.lines.filter(shared_integration_id__isnull=False)
        .order_by()
        .values_list("shared_integration_id")
        .annotate(n=Count("pk"))
    )
    return [(names.get(pk, "another integration"), n) for pk, n in rows]


def column_roles(view, upload) -> list[dict]:
    """The file's columns and what each is used as."""
    key = view.integration.match_key(upload.record_type)
    key_name = "ref" if key == REMOTE_REF else key
    roles = []
    for position, name in enumerate(upload.columns):
        if position == upload.id_column:
            use = "the id"
        elif position == upload.key_column:
            use = f"the key (compared with {key_name})"
        elif position == upload.ref_column:
            use = "the ref" + (
                f" (and the key, compared with {key_name})" if upload.key_column is None else ""
            )
        else:
            use = ""
        roles.append({"position": position, "name": name or f"column {position + 1}", "use": use})
    return roles


class ReconcileFixView(HealthMixin, PreviewApplyView):
    """The reconcile report's plan: preview by names (the engine's plan), then apply with
    `confirm`, and the entity typed when it unlinks more than a few percent of the tab."""

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

    @cached_property
    def choice(self) -> reconcile.FixChoice:
        return reconcile.FixChoice.from_form(self.request.POST, self.upload)

    @cached_property
    def typed_confirmation(self) -> bool:
        return reconcile.needs_typed_confirmation(self.upload, self.choice)

    def change_set(self):
        return reconcile.fix_change_set(self.upload, self.actor, self.choice)

    def confirmed(self) -> bool:
        if not super().confirmed():
            return False
        return not self.typed_confirmation or self.typed() == self.entity

    def typed(self) -> str:
        return self.request.POST.get("confirm_text", "").strip()

    def preview(self, change_set):
        response = super().preview(change_set)
        if super().confirmed():  # confirmed without the entity typed
            response.status_code = 422
        return response

    def back_url(self) -> str:
        return f"{self.url('reconcile')}?upload={self.upload.token}"

    def job_params(self) -> dict:
        return {"upload_id": self.upload.pk, "choice": self.choice.fields()}

    def job_description(self, size: int) -> str:
        return (
            f"Reconcile {size:,} {self.record_type} ids "
            f"with {self.upload.filename or 'a remote export'}"
        )

    def describe_lines(self, plan, lines) -> list[dict]:
        """Each change with the record it changes, by the names people know."""
        names = reconcile.record_names(self.upload, {line.change.record_id for line in lines})
        described = super().describe_lines(plan, lines)
        for item, line in zip(described, lines, strict=True):
            name = names.get(line.change.record_id)
            if name:
                joint = " from " if line.change.remote_id is None else " on "
                item["what"] = f"{item['what']}{joint}{name}"
        return described

    def preview_context(self) -> dict:
        unlinks = reconcile.unlink_count(self.upload, self.choice)
        return {
            "finding_label": "Reconcile with " + (self.upload.filename or "a remote export"),
            "action_label": "Apply the recovery plan",
            "confirm_fields": [("upload", self.upload.token), *self.choice.fields()],
            "typed_confirmation": self.typed_confirmation,
            "typed_error": bool(self.typed()) and self.typed() != self.entity,
            "unlinks": unlinks,
            "tab_links": self.upload.coverage.get("linked", 0),
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

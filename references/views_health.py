"""Health pages: the overview per integration, each entity's findings with their fixes, and
reconciliation with a remote export. Logic lives in health.py and reconcile.py; these views
wire requests to them. Every fix is previewed (the engine's plan) before it is applied.
"""

from __future__ import annotations

import csv
import io

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.views.generic import TemplateView, View

from common.entities import slug_of
from common.errors import DomainError
from common.paging import Keyset, paged
from integrations.models import REMOTE_REF, Integration
from integrations.tenancy import TenantMixin
from records import changes, jobs
from records.audit import Actor
from records.models import Job, Record, RemoteId

from . import health, reconcile
from .imports import escape_cell
from .models import ReconcileLine, ReconcileUpload
from .services import unlinked_source_rows
from .views_backfill import BackfillMixin, undo_form

PAGE_SIZE = 50
PREVIEW_LINES = 200
NEWEST_FIRST = Keyset(
    "pk", "pk", "pk", True, lambda row: (row.pk, row.pk),
    lambda value: value if isinstance(value, int) else None,
    lambda value: value if isinstance(value, int) else None,
)  # fmt: skip


class HealthOverviewView(TenantMixin, TemplateView):
    """/health/: one row per entity type, a count per finding, each linking to its list."""

    template_name = "references/health_overview.html"

    def get_context_data(self, **kwargs):
        integration = get_object_or_404(
            Integration.objects.for_tenant(self.tenant).select_related(
                "source__connector", "target__connector"
            ),
            pk=self.kwargs["integration_id"],
        )
        actor = Actor.for_user(self.request.user)
        scan_job = health.start_scan(integration, integration.synced_entity_types, actor)
        rows = []
        for entity_health in health.overview(integration):
            entity = slug_of(entity_health.record_type)
            rows.append(
                {
                    "health": entity_health,
                    "entity": entity,
                    "url": reverse(
                        "references:health",
                        kwargs={
                            "tenant_slug": self.tenant.slug,
                            "integration_id": integration.pk,
                            "entity": entity,
                        },
                    ),
                    "forecast": health.forecast(integration, entity_health),
                }
            )
        return super().get_context_data(
            integration=integration, rows=rows, scan_job=scan_job, **kwargs
        )


class HealthMixin(BackfillMixin):
    @cached_property
    def finding(self) -> str:
        value = self.request.GET.get("finding") or self.request.POST.get("finding")
        return value if value in health.FINDINGS else health.LOST

    def health_url(self, finding: str = "", **query) -> str:
        url = self.url("health")
        params = {"finding": finding or self.finding, **query}
        return url + "?" + "&".join(f"{k}={v}" for k, v in params.items() if v)

    def get_context_data(self, **kwargs):
        kwargs.setdefault("health_url", self.url("health"))
        kwargs.setdefault("reconcile_url", self.url("reconcile"))
        kwargs.setdefault("overview_url", reverse(
            "references:health-overview",
            kwargs={"tenant_slug": self.tenant.slug, "integration_id": self.integration.pk},
        ))  # fmt: skip
        return super().get_context_data(**kwargs)


class HealthView(HealthMixin, TemplateView):
    """One entity type's findings, as tabs; each list pages by keyset and exports to CSV."""

    template_name = "references/health.html"

    def get_context_data(self, **kwargs):
        scan_job = health.start_scan(self.integration, [self.record_type], self.actor)
        entity_health = health.entity_health(self.integration, self.record_type)
        rows = health.finding_rows(self.integration, self.record_type, self.finding)
        page, after, before = paged(
            rows,
            NEWEST_FIRST,
            1,
            PAGE_SIZE,
            after=self.request.GET.get("after", ""),
            before=self.request.GET.get("before", ""),
        )
        counts = {
            health.LOST: entity_health.lost,
            health.DUPLICATES: entity_health.duplicates,
            health.TWINS: entity_health.twins,
            health.REUSED: entity_health.reused,
        }
        tabs = [
            {
                "finding": finding,
                "label": label,
                "count": counts[finding],
                "url": self.health_url(finding),
                "current": finding == self.finding,
            }
            for finding, label in health.FINDINGS.items()
        ]
        field = self.integration.match_key(self.record_type)
        shown = health.evidence(self.integration, self.record_type, self.finding, page.rows)
        return super().get_context_data(
            entity_health=entity_health,
            forecast=health.forecast(self.integration, entity_health),
            finding=self.finding,
            finding_label=health.FINDINGS[self.finding],
            tabs=tabs,
            count=counts[self.finding],
            rows=shown,
            page=page,
            after=after,
            before=before,
            next_url=self.health_url(after=page.rows[-1].position)
            if page.has_next and page.rows
            else "",
            previous_url=self.health_url(before=page.rows[0].position)
            if (after or before) and page.rows
            else "",
            first_url=self.health_url() if (after or before) else "",
            key_label="ref" if field == REMOTE_REF else field,
            fix_url=self.url("health-fix"),
            scan_url=self.url("health-scan"),
            scan_job=scan_job,
            fixes=health.FIXES[self.finding],
            export_url=self.url("health-export") + f"?finding={self.finding}",
            **kwargs,
        )


class HealthScanView(HealthMixin, View):
    """Refresh: look for duplicates again now (a job; the page shows its progress)."""

    def get(self, request, *args, **kwargs):
        return redirect(self.health_url())

    def post(self, request, *args, **kwargs):
        health.start_scan(self.integration, [self.record_type], self.actor, force=True)
        return redirect(self.health_url())


class HealthExportView(HealthMixin, View):
    """A finding's whole list as CSV, with its evidence (spreadsheet-safe cells)."""

    def get(self, request, *args, **kwargs):
        integration, record_type, finding = self.integration, self.record_type, self.finding
        source, target = integration.source.name, integration.target.name
        header = {
            health.LOST: [f"{source} id", f"{source} ref", f"lost {target} id",
                          f"lost {target} ref", "lost at", "lost by", "how",
                          f"{target} id still free"],
            health.DUPLICATES: [f"{source} id", f"{source} ref", "same key",
                                f"duplicate {target} id", f"duplicate {target} ref"],
            health.TWINS: [f"{source} id", f"linked {target} id", "same key",
                           f"duplicate {target} id", f"duplicate {target} ref"],
            health.REUSED: ["connection", "remote id", "first seen on", "first ref", "first seen",
                            "now on", "ref now", "reused at", "reused by"],
        }[finding]  # fmt: skip

        def lines():
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(header)
            rows = health.finding_rows(integration, record_type, finding)
            for start in range(0, 10**9, 1000):
                chunk = list(rows[start : start + 1000])
                if not chunk:
                    break
                for item in health.evidence(integration, record_type, finding, chunk):
                    writer.writerow([escape_cell(str(v)) for v in self.values(finding, item)])
                yield out.getvalue()
                out.seek(0)
                out.truncate()
            if out.getvalue():
                yield out.getvalue()

        response = StreamingHttpResponse(lines(), content_type="text/csv")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = (
            f'attachment; filename="health-{finding}-{self.entity}-{stamp}.csv"'
        )
        response["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def values(finding: str, item) -> list:
        if finding == health.LOST:
            loss = item.loss
            free = "yes" if loss.free else "no"
            return [item.remote_id, item.remote_ref, loss.target_id, loss.target_ref,
                    loss.at.isoformat(), loss.actor, loss.how, free]  # fmt: skip
        if finding == health.DUPLICATES:
            return [item.source.remote_id, item.source.remote_ref, item.key,
                    item.duplicate.remote_id, item.duplicate.remote_ref]  # fmt: skip
        if finding == health.TWINS:
            return [item.source.remote_id, item.linked.remote_id, item.key,
                    item.duplicate.remote_id, item.duplicate.remote_ref]  # fmt: skip
        fingerprint = item.fingerprint
        return [
            fingerprint.connection.name, fingerprint.remote_id, fingerprint.local_id,
            fingerprint.remote_ref, fingerprint.first_seen.isoformat(),
            item.holder.local_id if item.holder else "", fingerprint.holder_ref,
            fingerprint.reused_at.isoformat(), fingerprint.reused_by,
        ]  # fmt: skip


def describe(plan, line) -> dict:
    """One planned change as a person reads it: what it does, and why (or why not)."""
    change = line.change
    if change.action == changes.Action.SET_ID and change.remote_id is None:
        here = plan.current.get((line.record_key, change.connection_id))
        what = f"Remove id {here.remote_id}" if here else "Remove an id"
    elif change.action == changes.Action.SET_ID:
        what = f"Set id {line.target_id}" + (f" ({line.target_ref})" if line.target_ref else "")
    elif change.action == changes.Action.MERGE:
        what = f"Link to {line.target_id} and retire the duplicate"
    else:
        what = f"Link {line.source_id} → {line.target_id}"
    return {"what": what, "outcome": line.outcome, "why": line.reason or change.note}


class HealthFixView(HealthMixin, TemplateView):
    """POST the rows to fix (or all): the preview of exactly what would change; POST again
    with `confirm` to apply it as one restorable batch (a background job when large)."""

    admin_only = True
    template_name = "references/health_fix.html"

    def get(self, request, *args, **kwargs):
        return redirect(self.health_url())

    @cached_property
    def action(self) -> str:
        action = self.request.POST.get("action", "")
        if action not in health.FIXES[self.finding]:
            raise DomainError("Choose a fix for these rows.")
        return action

    def chosen(self) -> list:
        rows = health.finding_rows(self.integration, self.record_type, self.finding)
        if self.request.POST.get("all") != "1":
            ids = [int(v) for v in self.request.POST.getlist("row") if v.isdigit()]
            rows = rows.filter(pk__in=ids[:10_000])
        return list(rows)

    def post(self, request, *args, **kwargs):
        try:
            rows = self.chosen()
            if not rows:
                raise DomainError(
                    "These rows no longer need this fix (someone changed them). Nothing was "
                    "changed."
                )
            if self.action == "acknowledge":
                count = health.acknowledge(self.integration, self.record_type, rows, self.actor)
                messages.success(request, f"Acknowledged {count:,} reused id{'s' * (count != 1)}.")
                return redirect(self.health_url())
            change_set = health.fix_change_set(
                self.integration, self.record_type, self.finding, self.action, rows, self.actor
            )
            if request.POST.get("confirm") != "1":
                return self.render_to_response(self.preview_context(change_set, rows))
            if jobs.runs_as_job(len(rows)):
                job = jobs.start_job(
                    "health_fix",
                    tenant=self.tenant,
                    actor=self.actor,
                    integration=self.integration,
                    record_type=self.record_type,
                    params={
                        "finding": self.finding,
                        "action": self.action,
                        "rows": None
                        if request.POST.get("all") == "1"
                        else [row.pk for row in rows],
                    },
                    total=len(rows),
                    description=f"{health.FIXES[self.finding][self.action]}: {len(rows):,} "
                    f"{self.record_type} {health.FINDINGS[self.finding].lower()}",
                )
                return redirect(reverse("records:job", args=[self.tenant.slug, job.pk]))
            applied = health.apply_fix(self.integration, self.finding, change_set, rows)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect(self.health_url())
        if applied.batch is None:
            messages.error(request, "Nothing was changed: " + self.first_reason(applied.plan))
            return redirect(self.health_url())
        rejected = applied.counts[changes.REJECTED]
        messages.success(
            request,
            format_html(
                "{}.{} {}",
                applied.batch.description,
                f" {rejected:,} could not be fixed: {self.first_reason(applied.plan)}"
                if rejected
                else "",
                undo_form(request, applied.batch, next_url=self.health_url()),
            ),
        )
        return redirect(self.health_url())

    @staticmethod
    def first_reason(plan) -> str:
        rejected = plan.of(changes.REJECTED)
        return rejected[0].reason if rejected else "the rows no longer need it."

    def preview_context(self, change_set, rows):
        plan = changes.plan(change_set)
        return self.get_context_data(
            finding=self.finding,
            finding_label=health.FINDINGS[self.finding],
            action=self.action,
            action_label=health.FIXES[self.finding][self.action],
            plan=plan,
            counts=plan.counts,
            described=[describe(plan, line) for line in plan.lines[:PREVIEW_LINES]],
            more=max(0, len(plan.lines) - PREVIEW_LINES),
            all=self.request.POST.get("all") == "1",
            row_ids=[row.pk for row in rows] if self.request.POST.get("all") != "1" else [],
            fix_url=self.url("health-fix"),
            back_url=self.health_url(),
            runs_as_job=jobs.runs_as_job(len(rows)),
        )


# --- reconcile --------------------------------------------------------------------------------


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
        lines = upload.text.count("\n")
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


class ReconcileFixView(HealthMixin, TemplateView):
    """The reconcile report's fix: preview (the engine's plan), then apply with `confirm`."""

    admin_only = True
    template_name = "references/health_fix.html"

    def get(self, request, *args, **kwargs):
        return redirect(self.url("reconcile"))

    def post(self, request, *args, **kwargs):
        upload = get_object_or_404(
            ReconcileUpload.objects.for_tenant(self.tenant).filter(
                integration=self.integration, record_type=self.record_type
            ),
            token=request.POST.get("upload", ""),
        )
        back = f"{self.url('reconcile')}?upload={upload.token}"
        try:
            change_set = reconcile.fix_change_set(upload, self.actor)
            if request.POST.get("confirm") != "1":
                plan = changes.plan(change_set)
                return self.render_to_response(
                    self.get_context_data(
                        finding="reconcile",
                        finding_label="Reconcile",
                        action_label="Remove the stale ids and link the matched ones",
                        plan=plan,
                        counts=plan.counts,
                        described=[describe(plan, line) for line in plan.lines[:PREVIEW_LINES]],
                        more=max(0, len(plan.lines) - PREVIEW_LINES),
                        upload=upload,
                        fix_url=self.url("reconcile-fix"),
                        back_url=back,
                        runs_as_job=jobs.runs_as_job(len(plan.lines)),
                    )
                )
            if jobs.runs_as_job(len(change_set.changes)):
                upload.job = jobs.start_job(
                    "reconcile_apply",
                    tenant=self.tenant,
                    actor=self.actor,
                    integration=self.integration,
                    record_type=self.record_type,
                    params={"upload_id": upload.pk},
                    total=len(change_set.changes),
                    description=f"Reconcile {len(change_set.changes):,} {self.record_type} ids "
                    f"with {upload.filename or 'a remote export'}",
                )
                upload.save(update_fields=["job"])
                return HttpResponseRedirect(back)
            applied = changes.apply(change_set)
        except DomainError as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(back)
        if applied.batch is None:
            messages.error(request, "Nothing was changed: every change was refused.")
            return HttpResponseRedirect(back)
        upload.batch = applied.batch
        upload.save(update_fields=["batch"])
        messages.success(
            request,
            format_html(
                "{}. {}",
                applied.batch.description,
                undo_form(request, applied.batch, next_url=back),
            ),
        )
        return HttpResponseRedirect(back)


class ReconcileSampleView(HealthMixin, View):
    """A sample export of this integration's side, with one line of every class: what a real
    export looks like, to try the reconcile page on."""

    def get(self, request, *args, **kwargs):
        side = request.GET.get("side", ReconcileUpload.Side.TARGET)
        text = sample_export(self.integration, self.record_type, side)
        response = StreamingHttpResponse([text], content_type="text/csv")
        response["Content-Disposition"] = (
            f'attachment; filename="sample-{side}-export-{self.entity}.csv"'
        )
        return response


def sample_export(integration, record_type: str, side: str) -> str:
    """The side's ids as its system would export them, with a few of each reconcile class."""
    connection = reconcile.side_connection(integration, side)
    rows = list(
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(connection=connection, record_type=record_type)
        .order_by("pk")
        .values_list("remote_id", "remote_ref")[:200]
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Id", "Reference"])
    kept = rows[3:]  # the first three are gone remotely: stale
    for number, (remote_id, remote_ref) in enumerate(kept):
        if number == 0:
            remote_ref = (remote_ref or "") + " (renamed)"  # ref differs
        writer.writerow([remote_id, remote_ref])
        if number == 1:
            writer.writerow([remote_id, remote_ref])  # twice
    unlinked = list(
        unlinked_source_rows(integration, record_type).select_related("record").order_by("pk")[:3]
    )
    field = integration.match_key(record_type)
    for number, row in enumerate(unlinked):
        key = row.remote_ref if field == REMOTE_REF else row.record.data.get(field)
        if key not in (None, ""):
            writer.writerow([f"NEW-{number + 1}", key])  # matched: unknown here, same key
    writer.writerow(["NEW-UNKNOWN-1", ""])  # unknown
    return out.getvalue()

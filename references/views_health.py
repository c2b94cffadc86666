"""Health pages: the overview per integration, and each entity's findings with their fixes
(reconciliation with a remote export is in views_reconcile.py). Logic lives in health.py; these
views wire requests to it. Every fix is previewed (the engine's plan) before it is applied.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.views.generic import TemplateView, View

from common.csvfile import csv_response
from common.entities import slug_of
from common.errors import DomainError
from common.numbers import parse_number, shown
from common.paging import Keyset, paged
from integrations.models import REMOTE_REF
from records import changes, jobs

from . import health
from .mixins import IntegrationMixin
from .views_restore import undo_form

PAGE_SIZE = 50
PREVIEW_LINES = 200
NEWEST_FIRST = Keyset(
    "pk", "pk", "pk", True, lambda row: (row.pk, row.pk),
    lambda value: value if isinstance(value, int) else None,
    lambda value: value if isinstance(value, int) else None,
)  # fmt: skip


class HealthOverviewView(IntegrationMixin, TemplateView):
    """/health/: one row per entity type, a count per finding, each linking to its list."""

    template_name = "references/health_overview.html"

    def get_context_data(self, **kwargs):
        integration = self.integration
        scan_job = health.start_scan(integration, integration.synced_entity_types, self.actor)
        rows = []
        for entity_health in health.overview(integration):
            entity = slug_of(entity_health.record_type)
            rows.append(
                {
                    "health": entity_health,
                    "entity": entity,
                    "url": self.url("health", entity),
                    "forecast": health.forecast(integration, entity_health),
                }
            )
        return super().get_context_data(rows=rows, scan_job=scan_job, **kwargs)


class HealthMixin(IntegrationMixin):
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

        def rows():
            found = health.finding_rows(integration, record_type, finding)
            for start in range(0, 10**9, 1000):
                chunk = list(found[start : start + 1000])
                if not chunk:
                    break
                for item in health.evidence(integration, record_type, finding, chunk):
                    yield self.values(finding, item)

        return csv_response(header, rows(), name=("health", finding, self.entity))

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

    admin_required = True
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
            asked = self.request.POST.getlist("row")[:10_000]
            ids = [parse_number(value) for value in asked]
            if None in ids:
                bad = shown(asked[ids.index(None)])
                raise DomainError(f"Row {bad!r} is not a row of this list: nothing was changed.")
            rows = rows.filter(pk__in=ids)
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

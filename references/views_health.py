"""Health pages: the overview per integration, and each entity's findings with their fixes
(reconciliation with a remote export is in views_reconcile.py). The findings are declarations
(references.findings); these views read their registry. Every fix is previewed (the engine's
plan) before it is applied (views_apply.py). A GET writes nothing: scans start from "Scan now"
(a POST) or `manage.py scan_health`.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.views.generic import TemplateView, View

from common.entities import slug_of
from common.errors import DomainError
from common.numbers import parse_number, shown
from common.paging import Keyset, paged

from . import findings
from .findings import incident, scans, summary
from .findings.export import finding_csv
from .findings.keys import key_label
from .mixins import IntegrationMixin
from .views_apply import PreviewApplyView

PAGE_SIZE = 50
NEWEST_FIRST = Keyset(
    "pk", "pk", "pk", True, lambda row: (row.pk, row.pk),
    lambda value: value if isinstance(value, int) else None,
    lambda value: value if isinstance(value, int) else None,
)  # fmt: skip


def scanned_findings(integration, record_type: str) -> list:
    return [f for f in findings.findings_of(integration, record_type) if f.scanned]


class HealthOverviewView(IntegrationMixin, TemplateView):
    """/health/: one row per entity type, a count per finding, each linking to its list."""

    template_name = "references/health_overview.html"

    def get_context_data(self, **kwargs):
        integration = self.integration
        rows = []
        for entity_health in summary.overview(integration):
            entity = slug_of(entity_health.record_type)
            url = self.url("health", entity)
            rows.append(
                {
                    "health": entity_health,
                    "entity": entity,
                    "url": url,
                    "counts": self.finding_counts(entity_health, url),
                    "scan_url": self.url("health-scan", entity),
                    "forecast": entity_health.forecast(integration),
                }
            )
        return super().get_context_data(
            rows=rows,
            incidents=incident.incidents(self.tenant, [integration]),
            findings=findings.FINDINGS.values(),
            scan_job=scans.running_scan(integration),
            **kwargs,
        )

    @staticmethod
    def finding_counts(entity_health, url: str) -> list[dict]:
        return [
            {"finding": name, "count": count, "url": url}
            for name, count in entity_health.found.items()
        ]


class HealthMixin(IntegrationMixin):
    @cached_property
    def finding(self) -> findings.Finding:
        name = self.request.GET.get("finding") or self.request.POST.get("finding", "")
        return findings.finding_named(self.integration, self.record_type, name)

    def health_url(self, finding: str = "", **query) -> str:
        url = self.url("health")
        params = {"finding": finding or self.finding.name, **query}
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
        entity_health = summary.entity_health(self.integration, self.record_type)
        finding = self.finding
        page, after, before = paged(
            finding.rows(),
            NEWEST_FIRST,
            1,
            PAGE_SIZE,
            after=self.request.GET.get("after", ""),
            before=self.request.GET.get("before", ""),
        )
        return super().get_context_data(
            entity_health=entity_health,
            forecast=entity_health.forecast(self.integration),
            finding=finding,
            tabs=self.tabs(entity_health),
            count=entity_health.found[finding.name],
            fix_buttons=self.fix_buttons(finding, entity_health.found[finding.name]),
            rows=finding.evidence(page.rows),
            page=page,
            **self.paging_urls(page, after, before),
            key_label=key_label(self.integration.match_key(self.record_type)),
            fix_url=self.url("health-fix"),
            scan_url=self.url("health-scan"),
            scan_job=scans.running_scan(self.integration),
            export_url=self.url("health-export") + f"?finding={finding.name}",
            **kwargs,
        )

    def fix_buttons(self, finding, count) -> list[dict]:
        """Each fix of all the rows, with how many it changes: "Put back the old link: all
        3…" when 3 of the 5 lost links can be put back. A fix that changes none has none."""
        if not (self.is_admin and count.value):
            return []
        buttons = []
        for fix in finding.fixes:
            fixable = finding.fixable_count(fix, count)
            if fixable is None or fixable.value:
                buttons.append({"fix": fix, "count": fixable})
        return buttons

    def tabs(self, entity_health) -> list[dict]:
        return [
            {
                "label": finding.label,
                "count": entity_health.found[name],
                "url": self.health_url(name),
                "current": name == self.finding.name,
            }
            for name, finding in findings.FINDINGS.items()
        ]

    def paging_urls(self, page, after, before) -> dict:
        return {
            "after": after,
            "before": before,
            "next_url": self.health_url(after=page.rows[-1].position)
            if page.has_next and page.rows
            else "",
            "first_url": self.health_url() if (after or before) else "",
        }


class HealthScanView(HealthMixin, View):
    """Scan now: look for duplicates (a job; the page shows its progress). From the overview
    (`next=overview`) it returns there."""

    def get(self, request, *args, **kwargs):
        return redirect(self.health_url())

    def post(self, request, *args, **kwargs):
        found_by = scanned_findings(self.integration, self.record_type)
        scans.start_scan(self.integration, [self.record_type], self.actor, len(found_by))
        if request.POST.get("next") == "overview":
            return redirect("references:health-overview", self.tenant.slug, self.integration.pk)
        return redirect(self.health_url())


class HealthExportView(HealthMixin, View):
    """A finding's whole list as CSV, with its evidence (spreadsheet-safe cells)."""

    def get(self, request, *args, **kwargs):
        return finding_csv(self.finding, self.entity)


class HealthFixView(HealthMixin, PreviewApplyView):
    """POST the rows to fix (or all): the preview of exactly what would change; POST again
    with `confirm` to apply it as one restorable batch (a background job when large). A fix
    that is not previewed (acknowledge) is done at once."""

    job_kind = "health_fix"

    @cached_property
    def fix(self) -> findings.Fix:
        return self.finding.fix(self.request.POST.get("action", ""))

    @property
    def every_row(self) -> bool:
        return self.request.POST.get("all") == "1"

    @cached_property
    def rows(self) -> list:
        """The chosen rows, re-derived from the finding (never trusted from the browser)."""
        rows = self.finding.rows()
        if not self.every_row:
            asked = self.request.POST.getlist("row")[:10_000]
            ids = [parse_number(value) for value in asked]
            if None in ids:
                bad = shown(asked[ids.index(None)])
                raise DomainError(f"Row {bad!r} is not a row of this list: nothing was changed.")
            rows = rows.filter(pk__in=ids)
        rows = list(rows)
        if not rows:
            raise DomainError(
                "These rows no longer need this fix (someone changed them). Nothing was changed."
            )
        return rows

    def post(self, request, *args, **kwargs):
        try:
            if not self.fix.previewed:
                messages.success(request, self.finding.act(self.fix, self.rows, self.actor))
                return redirect(self.back_url())
        except DomainError as error:
            messages.error(request, error.message)
            return redirect(self.back_url())
        return super().post(request, *args, **kwargs)

    def change_set(self):
        return self.finding.change_set(self.fix, self.rows, self.actor)

    def apply(self, change_set):
        return self.finding.apply(self.fix, change_set, self.rows)

    def back_url(self) -> str:
        return self.health_url()

    def job_params(self) -> dict:
        rows = None if self.every_row else [row.pk for row in self.rows]  # None: every row
        return {"finding": self.finding.name, "action": self.fix.action, "rows": rows}

    def job_description(self, size: int) -> str:
        return self.finding.job_description(self.fix, size)

    def preview_context(self) -> dict:
        every_row = self.every_row
        fields = [("finding", self.finding.name), ("action", self.fix.action)]
        fields += [("all", "1")] if every_row else [("row", row.pk) for row in self.rows]
        return {
            "finding_label": self.finding.label,
            "action_label": self.fix.label,
            "confirm_fields": fields,
        }

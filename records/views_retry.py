"""Retry sync: put records back into the delta feed (records.changes.RetrySync).

A GET shows what it does, by the records' names (nothing is written); the POST with `confirm`
applies it and says how many records were queued. Views declare which records
(`record_ids()`, re-derived on the server from what the URL names, never trusted ids) and
where to return (`back_url()`): one record (the record page), the records a batch changed
(`{% retry_sync_button batch %}`), and in references.views_retry the rows a References filter
shows.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import View

from common.entities import EntityType
from integrations.tenancy import TenantMixin

from . import changes, jobs
from .audit import Actor
from .models import Batch, BatchChange
from .queries import record_names
from .views import RecordMixin, type_label

# The preview names this many records; the rest are counted.
NAMED = 200


def plural(record_type: str, n: int) -> str:
    if record_type in EntityType.values:
        label = type_label(record_type).lower()
        return label if n != 1 else EntityType(record_type).name.lower()
    return f"{record_type} records" if n != 1 else f"{record_type} record"


class RetrySyncMixin:
    """The preview and the apply; a view gives `record_ids()`, `record_type`, `back_url()`."""

    admin_required = True
    why = ""

    def record_ids(self) -> set[int]:
        raise NotImplementedError

    def back_url(self) -> str:
        raise NotImplementedError

    def hidden_fields(self) -> list[tuple[str, str]]:
        return []

    def change_set(self) -> changes.RetrySync:
        return changes.RetrySync(
            tenant=self.tenant,
            record_type=self.record_type,
            actor=Actor.for_user(self.request.user),
            record_ids=frozenset(self.record_ids()),
            integration=getattr(self, "integration", None),
            why=self.why,
        )

    def get(self, request, *args, **kwargs):
        change_set = self.change_set()
        found = change_set.records()
        shown = [pk for pk, _ in found[:NAMED]]
        integration = getattr(self, "integration", None)
        prefer = integration.source_id if integration is not None else None
        names = record_names(self.tenant, shown, prefer=prefer)
        local_ids = dict(found[:NAMED])
        return render(
            request,
            "records/retry_sync.html",
            {
                "count": len(found),
                "what": plural(self.record_type, len(found)),
                "named": [(local_ids[pk], names.get(pk, local_ids[pk])) for pk in shown],
                "more": max(0, len(found) - NAMED),
                "too_many": jobs.runs_as_job(len(found)),
                "back_url": self.back_url(),
                "hidden_fields": self.hidden_fields(),
                "why": self.why,
            },
        )

    def post(self, request, *args, **kwargs):
        if request.POST.get("confirm") != "1":
            return self.get(request, *args, **kwargs)
        change_set = self.change_set()
        if jobs.runs_as_job(change_set.size):
            messages.error(
                request,
                f"Retry sync takes at most {settings.REFDESK_JOB_THRESHOLD:,} records at once; "
                "narrow the selection. Nothing was queued.",
            )
            return redirect(self.back_url())
        applied = changes.apply(change_set)
        n = applied.counts[changes.CHANGED]
        messages.success(
            request,
            f"Queued {n:,} {plural(self.record_type, n)} for the next sync: their lastModified "
            "moved, so each connector reads them again and updates them instead of creating "
            "them.",
        )
        return redirect(self.back_url())

    def safe_next(self, default: str) -> str:
        target = self.request.POST.get("next") or self.request.GET.get("next") or ""
        if url_has_allowed_host_and_scheme(target, {self.request.get_host()}):
            return target
        return default


class RecordRetrySyncView(RetrySyncMixin, RecordMixin, View):
    """The record page's Retry sync: this record."""

    @property
    def record_type(self) -> str:
        return self.get_record().record_type

    def record_ids(self) -> set[int]:
        return {self.get_record().pk}

    def back_url(self) -> str:
        return self.detail_url()


class BatchRetrySyncView(RetrySyncMixin, TenantMixin, View):
    """The records a batch changed (after a Reconcile or a Health fix): `retry_sync_button`."""

    why = "after a repair"

    def resolve(self) -> None:
        super().resolve()
        self.batch = self.get_object_or_404(Batch, pk=self.url_id("batch_id"))
        self.integration = self.batch.integration

    @property
    def record_type(self) -> str:
        return self.batch.record_type

    def record_ids(self) -> set[int]:
        rows = BatchChange.objects.for_tenant(self.tenant).filter(batch=self.batch)
        return set(rows.values_list("record_id", flat=True))

    def back_url(self) -> str:
        return self.safe_next(reverse("records:index", args=[self.tenant.slug]))

    def hidden_fields(self) -> list[tuple[str, str]]:
        return [("next", self.back_url())]

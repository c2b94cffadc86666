"""Scans: the scanned findings (duplicates) of a large integration, computed by a job and kept.

Comparing keys over every record only the target knows costs 300 ms at a million references,
so above REFDESK_HEALTH_LIVE_ROWS target ids a job computes them (`scan`) and the pages read
what it kept. A scan starts from a POST ("Scan now"), or from `manage.py scan_health` run
periodically; opening a page never starts one.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.display_counts import capped_count
from common.sets import CHUNK
from records import jobs
from records.audit import Actor
from records.models import Job, RemoteId

from ..models import HealthScan, HealthScanRow
from .keys import Pair
from .wording import plural

SCAN_MAX_AGE = timedelta(hours=1)
SCAN_JOB = "health_scan"


def live_limit() -> int:
    """Above this many target ids of a type, duplicates are scanned by a job, not per page."""
    return getattr(settings, "REFDESK_HEALTH_LIVE_ROWS", 50_000)


def is_large(integration, record_type: str) -> bool:
    limit = live_limit()
    targets = RemoteId.objects.for_tenant(integration.tenant).filter(
        connection=integration.target, record_type=record_type
    )
    count = capped_count(targets, cap=limit)
    return not count.exact or count.value > limit


def latest_scans(integration, record_type: str):
    return HealthScan.objects.for_tenant(integration.tenant).filter(
        integration=integration, record_type=record_type
    )


def scanned_rows(integration, scan):
    """The duplicates a scan found that are still there (a fixed one is gone)."""
    return RemoteId.objects.for_tenant(integration.tenant).filter(
        pk__in=scan.rows.values("remote_id_pk")
    )


def scan(found_by, progress=None) -> list[HealthScan]:
    """Compute the scanned findings of one entity type (`found_by`: those findings, each with
    `pairs_found()`) and keep what they found."""
    done = []
    for finding in found_by:
        done.append(_keep(finding, finding.pairs_found()))
        if progress:
            progress(f"Scanned {finding.label.lower()}", len(done), len(found_by))
    return done


def _keep(finding, found: list[Pair]) -> HealthScan:
    with transaction.atomic():
        kept, _ = HealthScan.objects.update_or_create(
            tenant=finding.integration.tenant,
            integration=finding.integration,
            record_type=finding.record_type,
            finding=finding.name,
            defaults={"computed_at": timezone.now(), "count": len(found)},
        )
        kept.rows.all().delete()
        HealthScanRow.objects.bulk_create(
            (
                HealthScanRow(
                    tenant=finding.integration.tenant,
                    scan=kept,
                    remote_id_pk=pair.duplicate.pk,
                    source_pk=pair.source.pk,
                    linked_pk=pair.linked.pk if pair.linked else None,
                    key=str(pair.key)[:255],
                )
                for pair in found
            ),
            batch_size=CHUNK,
        )
    return kept


def scan_is_due(integration, record_type: str, scanned: int) -> bool:
    """A large type without a scan of each of its `scanned` findings, or with one older than
    SCAN_MAX_AGE."""
    if not is_large(integration, record_type):
        return False
    kept = list(latest_scans(integration, record_type))
    oldest = min((s.computed_at for s in kept), default=None)
    return len(kept) < scanned or oldest < timezone.now() - SCAN_MAX_AGE


def running_scan(integration) -> Job | None:
    """The integration's scan job that is queued or running, if any (reads only)."""
    return (
        Job.objects.for_tenant(integration.tenant)
        .filter(kind=SCAN_JOB, integration=integration, state__in=jobs.ACTIVE)
        .first()
    )


def start_scan(integration, record_types: list[str], actor: Actor, scanned: int) -> Job:
    """A job that scans the given types (`scanned`: how many findings each has to scan); the
    running one if there is one."""
    running = running_scan(integration)
    if running is not None:
        return running
    labels = ", ".join(plural(t, 2) for t in record_types)
    return jobs.start_job(
        SCAN_JOB,
        tenant=integration.tenant,
        actor=actor,
        integration=integration,
        record_type=record_types[0] if len(record_types) == 1 else "",
        params={"record_types": record_types},
        total=len(record_types) * scanned,
        description=f"Look for duplicates of {labels} in {integration.target.name}",
    )


def pairs_from_scan(finding, rows) -> list[Pair]:
    """The pairs of a page of scanned duplicates, from what the scan stored (no key search)."""
    integration = finding.integration
    stored = {
        row.remote_id_pk: row
        for row in HealthScanRow.objects.for_tenant(integration.tenant).filter(
            scan__in=latest_scans(integration, finding.record_type).filter(finding=finding.name),
            remote_id_pk__in=[row.pk for row in rows],
        )
    }
    others = (
        RemoteId.objects.for_tenant(integration.tenant)
        .select_related("record")
        .in_bulk(
            {row.source_pk for row in stored.values()}
            | {row.linked_pk for row in stored.values() if row.linked_pk}
        )
    )
    result = []
    for row in rows:
        kept = stored.get(row.pk)
        if kept is None or kept.source_pk not in others:
            continue
        linked = others.get(kept.linked_pk) if kept.linked_pk else None
        if finding.pairs_linked and linked is None:
            continue
        result.append(Pair(others[kept.source_pk], row, kept.key, linked))
    return result

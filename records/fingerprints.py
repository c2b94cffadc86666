"""What Health changes in remote-id fingerprints (RemoteIdFingerprint), beside the engine that
keeps them (records.changes.remember_remote_ids).

Each change is one transaction with its audit entries, built by the one audit helper
(records.audit.audit_entry): acknowledging a reused id, and forgetting the fingerprints of ids
a fix unlinked, in the same transaction as the engine's batch.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from common.sets import CHUNK

from . import changes
from .audit import Actor, audit_entry
from .models import AuditEntry, Record, RemoteIdFingerprint

ACKNOWLEDGED_FIELDS = [
    "record_id", "local_id", "remote_ref", "first_seen",
    "reused_at", "reused_by", "acknowledged_at", "acknowledged_by",
]  # fmt: skip


def acknowledge_reuses(integration, record_type: str, fingerprints, actor: Actor) -> int:
    """The reuse is fine: each id's fingerprint becomes what it is now (the record that holds
    it, its ref now), audited. `fingerprints` carry `holder_id` and `holder_ref` (the Health
    list's annotations)."""
    tenant, now = integration.tenant, timezone.now()
    holders = (
        Record.objects.for_tenant(tenant)
        .defer("data")
        .in_bulk({fingerprint.holder_id for fingerprint in fingerprints})
    )
    entries = []
    for fingerprint in fingerprints:
        holder = holders[fingerprint.holder_id]
        entries.append(_acknowledgement(integration, record_type, fingerprint, holder, actor, now))
        fingerprint.record_id, fingerprint.local_id = holder.pk, holder.local_id
        fingerprint.remote_ref, fingerprint.first_seen = fingerprint.holder_ref, now
        fingerprint.reused_at, fingerprint.reused_by = None, ""
        fingerprint.acknowledged_at, fingerprint.acknowledged_by = now, str(actor)
    with transaction.atomic():
        RemoteIdFingerprint.objects.for_tenant(tenant).bulk_update(
            fingerprints, ACKNOWLEDGED_FIELDS, batch_size=CHUNK
        )
        AuditEntry.objects.bulk_create(entries, batch_size=CHUNK)
    return len(fingerprints)


def _acknowledgement(integration, record_type, fingerprint, holder, actor, now) -> AuditEntry:
    return audit_entry(
        integration.tenant,
        actor,
        AuditEntry.Action.ACKNOWLEDGE,
        record=holder,
        connection=fingerprint.connection,
        integration=integration,
        before={"record": fingerprint.local_id, "remote_ref": fingerprint.remote_ref},
        after={"record": holder.local_id, "remote_ref": fingerprint.holder_ref},
        summary=f"Acknowledged that {fingerprint.connection.name} id "
        f"{fingerprint.remote_id} now belongs to this {record_type}",
        at=now,
    )


def apply_forgetting(change_set, fingerprints, *, progress=None) -> changes.Applied:
    """Apply a change set that unlinks reused ids, and in the same transaction forget their
    fingerprints: each id starts afresh the next time a sync writes it."""
    with transaction.atomic():
        applied = changes.apply(change_set, progress=progress)
        if applied.batch is not None:
            RemoteIdFingerprint.objects.for_tenant(change_set.tenant).filter(
                pk__in=[fingerprint.pk for fingerprint in fingerprints]
            ).delete()
    return applied

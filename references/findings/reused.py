"""Reused remote ids: ids whose fingerprint (records.models.RemoteIdFingerprint) says a sync
put them on another record, or changed their ref, after a remote wipe; fixed by unlinking (the
next sync re-creates the record) or acknowledged."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from common.display_counts import Count, capped_count
from records import changes, fingerprints
from records.audit import Actor
from records.counts import Counts
from records.models import AuditEntry, Batch, Record, RemoteId, RemoteIdFingerprint

from ..services import reference_change_set
from .base import Finding, Fix


def reused_rows(integration, record_type: str):
    """Fingerprints marked reused whose id is still held (by the record it now belongs to)."""
    holders = RemoteId.objects.for_tenant(integration.tenant).filter(
        connection_id=OuterRef("connection_id"),
        record_type=OuterRef("record_type"),
        remote_id=OuterRef("remote_id"),
    )
    return (
        RemoteIdFingerprint.objects.for_tenant(integration.tenant)
        .filter(
            record_type=record_type,
            reused_at__isnull=False,
            connection__in=[integration.source_id, integration.target_id],
        )
        .annotate(
            holder_id=Subquery(holders.values("record_id")[:1]),
            holder_ref=Subquery(holders.values("remote_ref")[:1]),
        )
        .filter(holder_id__isnull=False)
        .select_related("connection")
    )


@dataclass(frozen=True)
class Reuse:
    fingerprint: RemoteIdFingerprint
    holder: Record | None  # where the id is now
    before: Record | None  # where it was first seen (None: that record is gone)
    holder_label: str = ""  # the records as people know them: "Shopify 5001001470 (#1211)"
    before_label: str = ""

    @property
    def moved(self) -> bool:
        return self.fingerprint.record_id != self.fingerprint.holder_id

    @property
    def ref_changed(self) -> bool:
        fingerprint = self.fingerprint
        return bool(fingerprint.remote_ref) and fingerprint.remote_ref != fingerprint.holder_ref


def reuses(integration, found) -> list[Reuse]:
    ids = {f.holder_id for f in found} | {f.record_id for f in found}
    records = Record.objects.for_tenant(integration.tenant).defer("data").in_bulk(ids)
    labels = record_labels(integration, ids)
    return [
        Reuse(
            f,
            records.get(f.holder_id),
            records.get(f.record_id),
            labels.get(f.holder_id, ""),
            labels.get(f.record_id, ""),
        )
        for f in found
    ]


def record_labels(integration, record_ids) -> dict[int, str]:
    """Records named by what people search for: the source's id and ref, else the target's."""
    labels = {}
    rows = (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(
            record_id__in=list(record_ids),
            connection__in=[integration.source_id, integration.target_id],
        )
        .order_by("record_id")
        .values_list("record_id", "connection_id", "remote_id", "remote_ref")
    )
    names = {
        integration.source_id: integration.source.name,
        integration.target_id: integration.target.name,
    }
    for record_id, connection_id, remote_id, remote_ref in rows:
        label = f"{names[connection_id]} {remote_id}" + (f" ({remote_ref})" if remote_ref else "")
        if connection_id == integration.source_id or record_id not in labels:
            labels[record_id] = label
    return labels


def unlink_reused_change_set(integration, record_type: str, found, actor: Actor):
    """Remove each reused id from the record it is on now: the next sync makes it anew."""
    unlinks = [
        (
            fingerprint.holder_id,
            fingerprint.connection_id,
            "id reused after a remote wipe (first seen on another record"
            + (f", as {fingerprint.remote_ref})" if fingerprint.remote_ref else ")"),
        )
        for fingerprint in found
    ]
    return unlink_ids_change_set(integration, record_type, actor, unlinks, before="reused ")


def unlink_ids_change_set(
    integration, record_type: str, actor: Actor, unlinks, *, before: str = "", after: str = ""
):
    """Remove ids the remote system now uses for other documents from the records that hold
    them (the reused-ids and refused-writes fixes): `unlinks` is (record id, connection id,
    note) per id; one UNLINK_REUSED batch, "Unlinked 3 {before}order ids{after}"."""
    change_list = [
        changes.Change(
            changes.Action.SET_ID,
            line=number,
            record_id=record_id,
            connection_id=connection_id,
            remote_id=None,
            note=note,
        )
        for number, (record_id, connection_id, note) in enumerate(unlinks, start=1)
    ]
    ids = f"{record_type} id" if len(change_list) == 1 else f"{record_type} ids"
    return reference_change_set(
        integration,
        record_type,
        actor,
        Batch.Kind.UNLINK_REUSED,
        change_list,
        audit_action=AuditEntry.Action.DELETE,
        description=f"Unlinked {{written}} {before}{ids}{after}",
    )


class ReusedIds(Finding):
    name = "reused"
    label = "Reused ids"
    fixes = (
        Fix("unlink", "Unlink", removes=True),
        Fix("acknowledge", "Acknowledge", previewed=False),
    )
    template = "references/findings/reused.html"

    def rows(self):
        return reused_rows(self.integration, self.record_type).order_by("-pk")

    def count(self, kept: Counts) -> Count:
        return capped_count(reused_rows(self.integration, self.record_type))

    def evidence(self, rows: list) -> list[Reuse]:
        return reuses(self.integration, rows)

    def csv_header(self) -> list[str]:
        return ["connection", "remote id", "first seen on", "first ref", "first seen",
                "now on", "ref now", "reused at", "reused by"]  # fmt: skip

    def csv_values(self, item) -> list:
        fingerprint = item.fingerprint
        return [
            fingerprint.connection.name, fingerprint.remote_id, fingerprint.local_id,
            fingerprint.remote_ref, fingerprint.first_seen.isoformat(),
            item.holder.local_id if item.holder else "", fingerprint.holder_ref,
            fingerprint.reused_at.isoformat(), fingerprint.reused_by,
        ]  # fmt: skip

    def change_set(self, fix: Fix, rows: list, actor: Actor):
        return unlink_reused_change_set(self.integration, self.record_type, rows, actor)

    def apply(self, fix: Fix, change_set, rows: list, *, progress=None) -> changes.Applied:
        # An unlinked id starts afresh: its fingerprint goes in the batch's transaction.
        return fingerprints.apply_forgetting(change_set, rows, progress=progress)

    def act(self, fix: Fix, rows: list, actor: Actor) -> str:
        """Acknowledge: the reuse is fine, the id's fingerprint becomes what it is now."""
        count = fingerprints.acknowledge_reuses(self.integration, self.record_type, rows, actor)
        return f"Acknowledged {count:,} reused id{'s' * (count != 1)}."

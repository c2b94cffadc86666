"""Refused writes: a connector's write the API refused because another record holds the id
(records.refusals keeps them). After a remote reset the remote system hands out old ids
again: its connector tries to give a new document's id to a record, and refdesk refuses it
because an older record still holds that id. Fixed by unlinking the id from the record that
holds it (the connector's next write then lands), which is a change set like every fix."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef

from common.display_counts import Count, capped_count
from records.audit import Actor
from records.counts import Counts
from records.models import Record, RefusedWrite, RemoteId

from .base import Finding, Fix
from .reused import record_labels, unlink_ids_change_set
from .wording import plural


def refused_rows(integration, record_type: str):
    """Refusals of the integration's two connections whose id the holder still holds, about
    this integration's records: the holder or the record written is one its source knows
    (a connection two integrations share is refused once, shown where it matters)."""
    tenant = integration.tenant
    still_held = RemoteId.objects.for_tenant(tenant).filter(
        connection_id=OuterRef("connection_id"),
        record_type=OuterRef("record_type"),
        remote_id=OuterRef("remote_id"),
        record_id=OuterRef("holder_id"),
    )
    source = RemoteId.objects.for_tenant(tenant).filter(connection_id=integration.source_id)
    return (
        RefusedWrite.objects.for_tenant(tenant)
        .filter(
            record_type=record_type,
            connection__in=[integration.source_id, integration.target_id],
        )
        .filter(Exists(still_held))
        .filter(
            Exists(source.filter(record_id=OuterRef("holder_id")))
            | Exists(source.filter(record_id=OuterRef("record_id")))
        )
        .select_related("connection")
    )


def unlinked_writers(integration, record_type: str) -> int:
    """How many unlinked source records the target's connector tried to give an id that
    another record holds: the next sync creates them in the target, which has them already."""
    tenant = integration.tenant
    has_target = RemoteId.objects.for_tenant(tenant).filter(
        record_id=OuterRef("record_id"), connection_id=integration.target_id
    )
    has_source = RemoteId.objects.for_tenant(tenant).filter(
        record_id=OuterRef("record_id"), connection_id=integration.source_id
    )
    return (
        refused_rows(integration, record_type)
        .filter(connection_id=integration.target_id, record__isnull=False)
        .filter(Exists(has_source))
        .exclude(Exists(has_target))
        .values("record_id")
        .distinct()
        .count()
    )


@dataclass(frozen=True)
class Refused:
    refused: RefusedWrite
    writer_label: str  # the record the connector wrote onto, as people know it ("" : a create)
    holder_label: str
    holder: Record | None
    writer: Record | None


def unlink_holders_change_set(integration, record_type: str, rows, actor: Actor):
    """Remove each refused id from the record that holds it: the connector's next write of
    that id lands where the remote system now uses it."""
    wanted = {}
    for row in rows:
        wanted.setdefault((row.holder_id, row.connection_id), row)
    unlinks = [
        (
            holder_id,
            connection_id,
            f"{row.connection.name} now uses {row.remote_id} for another record "
            f"(refused at {row.refused_at:%Y-%m-%d %H:%M})",
        )
        for (holder_id, connection_id), row in wanted.items()
    ]
    return unlink_ids_change_set(
        integration, record_type, actor, unlinks, after=" refused to a connector"
    )


class RefusedWrites(Finding):
    name = "refused"
    label = "Refused writes"
    fixes = (Fix("unlink", "Unlink from the holder", removes=True),)
    template = "references/findings/refused.html"

    def rows(self):
        return refused_rows(self.integration, self.record_type).order_by("-pk")

    def count(self, kept: Counts) -> Count:
        return capped_count(refused_rows(self.integration, self.record_type))

    def in_target(self, found: Count) -> tuple[int, str]:
        if not found.value:
            return 0, ""
        n = unlinked_writers(self.integration, self.record_type)
        target = self.integration.target.name
        return n, f"{target} tried to give {'them' if n != 1 else 'it'} ids refdesk holds"

    def evidence(self, rows: list) -> list[Refused]:
        ids = {row.holder_id for row in rows} | {row.record_id for row in rows if row.record_id}
        records = Record.objects.for_tenant(self.integration.tenant).defer("data").in_bulk(ids)
        labels = record_labels(self.integration, ids)
        return [
            Refused(
                row,
                labels.get(row.record_id, "") if row.record_id else "",
                labels.get(row.holder_id, ""),
                records.get(row.holder_id),
                records.get(row.record_id) if row.record_id else None,
            )
            for row in rows
        ]

    def csv_header(self) -> list[str]:
        return ["connection", "remote id", "remote ref", "written onto", "held by",
                "refused at", "refused to"]  # fmt: skip

    def csv_values(self, item) -> list:
        row = item.refused
        return [
            row.connection.name, row.remote_id, row.remote_ref,
            item.writer_label or ("a new record" if row.record_id is None else ""),
            item.holder_label, row.refused_at.isoformat(), row.actor,
        ]  # fmt: skip

    def change_set(self, fix: Fix, rows: list, actor: Actor):
        return unlink_holders_change_set(self.integration, self.record_type, rows, actor)

    def job_description(self, fix: Fix, size: int) -> str:
        return f"{fix.label}: {size:,} refused {plural(self.record_type, size)} ids"

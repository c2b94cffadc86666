"""Lost links: unlinked source records that had a target id before, and who or what removed it
(a batch that removed the target row and was not restored); fixed by putting the old target id
back where it is still free."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef

from common.display_counts import Count
from common.sets import CHUNK
from records import changes
from records.audit import Actor
from records.counts import Counts, is_lost, removed_target_rows
from records.models import AuditEntry, Batch, RemoteId

from ..services import reference_change_set, unlinked_source_rows
from .base import Finding, Fix


def lost_rows(integration, record_type: str):
    return unlinked_source_rows(integration, record_type).filter(is_lost(integration))


@dataclass(frozen=True)
class Loss:
    """How one record lost its link: the target id it had and the batch that removed it."""

    target_id: str
    target_ref: str
    batch_id: int
    at: datetime
    actor: str
    how: str  # "delete all", "import"...
    free: bool  # the target id is not held by another record now


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def losses(integration, record_type: str, record_ids) -> dict[int, Loss]:
    """For each of these (unlinked) records, the most recent removal of its target id, and
    whether that id is still free: one query per thousand records."""
    held_by_another = Exists(
        RemoteId.objects.for_tenant(integration.tenant).filter(
            connection=integration.target, record_type=record_type, remote_id=OuterRef("remote_id")
        )
    )
    latest = {}
    for chunk in _chunks(list(record_ids)):
        removed = (
            removed_target_rows(integration)
            .filter(record_id__in=chunk)
            .annotate(taken=held_by_another)
            .order_by("record_id", "-batch_id")
            .values_list(
                "record_id", "remote_id", "remote_ref", "batch_id",
                "batch__created_at", "batch__actor", "batch__kind", "taken",
            )
        )  # fmt: skip
        for record_id, *values in removed:
            latest.setdefault(record_id, values)
    return {record_id: _loss(*values) for record_id, values in latest.items()}


def _loss(remote_id, remote_ref, batch_id, at, actor, kind, taken) -> Loss:
    how = Batch.Kind(kind).label.lower() if kind in Batch.Kind.values else kind
    return Loss(remote_id, remote_ref, batch_id, at, actor, how, free=not taken)


def relink_change_set(integration, record_type: str, rows, actor: Actor):
    """Put back the old link of each lost source row (rows: source RemoteIds of lost records).

    An old target id now held by another record is rejected by the engine, naming the holder.
    """
    found = losses(integration, record_type, [row.record_id for row in rows])
    change_list = [
        changes.Change(
            changes.Action.LINK,
            line=number,
            source_id=row.remote_id,
            target_id=found[row.record_id].target_id,
            target_ref=found[row.record_id].target_ref,
            note="put back the link lost by "
            f"{found[row.record_id].how} of {found[row.record_id].actor}",
        )
        for number, row in enumerate(rows, start=1)
        if row.record_id in found
    ]
    return reference_change_set(
        integration,
        record_type,
        actor,
        Batch.Kind.RELINK,
        change_list,
        ambiguous_advice="neither link is put back; link the right one on the References page.",
        audit_action=AuditEntry.Action.RELINK,
        description="Put back {written} lost "
        + (f"{record_type} link" if len(change_list) == 1 else f"{record_type} links"),
    )


class LostLinks(Finding):
    name = "lost"
    label = "Lost links"
    fixes = (Fix("relink", "Put back the old link"),)
    template = "references/findings/lost.html"

    def rows(self):
        return (
            lost_rows(self.integration, self.record_type).select_related("record").order_by("-pk")
        )

    def count(self, kept: Counts) -> Count:
        return Count(kept.lost)

    def evidence(self, rows: list) -> list:
        found = losses(self.integration, self.record_type, [row.record_id for row in rows])
        for row in rows:
            row.loss = found.get(row.record_id)
        return rows

    def csv_header(self) -> list[str]:
        source, target = self.integration.source.name, self.integration.target.name
        return [f"{source} id", f"{source} ref", f"lost {target} id", f"lost {target} ref",
                "lost at", "lost by", "how", f"{target} id still free"]  # fmt: skip

    def csv_values(self, item) -> list:
        loss = item.loss
        free = "yes" if loss.free else "no"
        return [item.remote_id, item.remote_ref, loss.target_id, loss.target_ref,
                loss.at.isoformat(), loss.actor, loss.how, free]  # fmt: skip

    def change_set(self, fix: Fix, rows: list, actor: Actor):
        return relink_change_set(self.integration, self.record_type, rows, actor)

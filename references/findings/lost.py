"""Lost links: unlinked source records that had a target id before, and who or what removed it
(a batch that removed the target row and was not restored); fixed by putting the old target id
back where it is still free."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import OuterRef, Subquery

from common.display_counts import Count
from common.sets import CHUNK
from records import changes
from records.audit import Actor
from records.counts import Counts, is_lost, removed_target_rows
from records.history import display_name
from records.models import DELIBERATE_REMOVALS, AuditEntry, Batch, RemoteId

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
    reason: str = ""  # the batch's own description ("Reconciled 12 order ids with erp.csv")
    # Removed on purpose by a fix (reconcile, unlinking a reused id): "unlinked", not "lost",
    # and not put back by the Lost links fix, which would undo it.
    deliberate: bool = False
    holder: str = ""  # who holds the id now, when not free: "Shopify 5002 (#1002)"

    @property
    def restorable(self) -> bool:
        """Whether the Lost links fix puts this link back."""
        return self.free and not self.deliberate


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def losses(integration, record_type: str, record_ids) -> dict[int, Loss]:
    """For each of these (unlinked) records, the most recent removal of its target id, and
    whether that id is still free: one query per thousand records."""
    held_by_another = Subquery(
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(
            connection=integration.target, record_type=record_type, remote_id=OuterRef("remote_id")
        )
        .values("record_id")[:1]
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
                "batch__created_at", "batch__actor", "batch__kind", "batch__description",
                "taken",
            )
        )  # fmt: skip
        for record_id, *values in removed:
            latest.setdefault(record_id, values)
    found = {record_id: _loss(*values) for record_id, values in latest.items()}
    holders = holder_names(integration, record_type, {v[-1] for v in latest.values() if v[-1]})
    return {
        record_id: replace(loss, holder=holders.get(latest[record_id][-1], "")) if not loss.free
        else loss
        for record_id, loss in found.items()
    }  # fmt: skip


def holder_names(integration, record_type: str, record_ids) -> dict[int, str]:
    """The records now holding lost ids, by the names people know: "Shopify 5002 (#1002)"
    (their source id), else "a Fortnox-only record"."""
    names = {}
    rows = RemoteId.objects.for_tenant(integration.tenant).filter(
        connection=integration.source, record_type=record_type, record_id__in=list(record_ids)
    )
    for record_id, remote_id, ref in rows.values_list("record_id", "remote_id", "remote_ref"):
        names[record_id] = f"{integration.source.name} {remote_id}" + (f" ({ref})" if ref else "")
    only_target = f"a {integration.target.name}-only record"
    return {record_id: names.get(record_id, only_target) for record_id in record_ids}


def _loss(remote_id, remote_ref, batch_id, at, actor, kind, description, taken) -> Loss:
    how = Batch.Kind(kind).label.lower() if kind in Batch.Kind.values else kind
    return Loss(
        remote_id, remote_ref, batch_id, at, actor, how, free=not taken,
        reason=description, deliberate=kind in DELIBERATE_REMOVALS,
    )  # fmt: skip


# Above this many lost rows the fix buttons do not count which of them can be put back
# (each thousand rows is a query): they say "every one still free" instead.
RESTORABLE_COUNTED_UP_TO = 5_000


def restorable_count(integration, record_type: str, lost: int) -> int | None:
    """How many of the tab's `lost` rows the fix puts back (their id is still free and a fix
    did not remove it on purpose), or None when there are too many to count here."""
    if lost > RESTORABLE_COUNTED_UP_TO:
        return None
    record_ids = lost_rows(integration, record_type).values_list("record_id", flat=True)
    found = losses(integration, record_type, list(record_ids))
    return sum(1 for loss in found.values() if loss.restorable)


def relink_change_set(integration, record_type: str, rows, actor: Actor):
    """Put back the old link of each lost source row (rows: source RemoteIds of lost records).

    An old target id now held by another record is rejected by the engine, naming the holder.
    A link a fix removed on purpose (reconcile, a reused id) is left alone: putting it back
    would undo that fix (its own Undo does that).
    """
    found = {
        record_id: loss
        for record_id, loss in losses(integration, record_type, [r.record_id for r in rows]).items()
        if not loss.deliberate
    }
    change_list = [
        changes.Change(
            changes.Action.LINK,
            line=number,
            source_id=row.remote_id,
            target_id=found[row.record_id].target_id,
            target_ref=found[row.record_id].target_ref,
            note="put back the link lost by "
            f"{found[row.record_id].how} of "
            f"{display_name(integration.tenant_id, found[row.record_id].actor)}",
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

    def fixable_count(self, fix: Fix, count: Count) -> Count | None:
        restorable = restorable_count(self.integration, self.record_type, count.value)
        return None if restorable is None else Count(restorable)

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

"""RetrySync: put records back into the delta feed, so the next sync reads them again.

After a remote reset is repaired (reused ids moved, dead links removed), the connectors must
see the affected records once more: the next sync then updates the documents their ids now
name, instead of creating them again. Retry sync marks each record changed exactly as an
edit does (`last_modified`, one version bump, the writing transaction `change_xid` that the
feed orders by: records.audit.mark_changed) and writes one audit entry per record. It writes
no remote id, so there is nothing to restore: no Batch, no tab lock, no counts change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from django.db import transaction
from django.utils import timezone

from common.sets import CHUNK, where_in
from records import counts
from records.audit import Actor, audit_entry, mark_changed
from records.models import AuditEntry, Record

from .engine import ChangeSetBase
from .types import CHANGED, Applied, Plan, ProgressCallback


@dataclass
class RetrySync(ChangeSetBase):
    """Mark `record_ids` (of one type, on one tenant) changed, each with its audit entry."""

    tenant: object
    record_type: str
    actor: Actor
    record_ids: frozenset[int] = field(default_factory=frozenset)
    integration: object = None  # the integration it was asked from, for the audit trail
    why: str = ""  # "after Reconcile", "from the References filter"...
    kind: ClassVar = None  # no Batch: nothing to restore

    @property
    def size(self) -> int:
        return len(self.record_ids)

    def records(self):
        """The records it marks, re-read on the tenant and type (never trusted ids)."""
        found = []
        for part in where_in(Record.objects.for_tenant(self.tenant), "pk", self.record_ids):
            found += part.filter(record_type=self.record_type).values_list("pk", "local_id")
        return sorted(found)

    def lock(self) -> None:
        """No remote id is written: no tab to lock."""

    def plan(self) -> Plan:
        result = Plan(self)
        result.counts[CHANGED] = len(self.records())
        return result

    def tracker(self, plan: Plan) -> counts.Tracker:
        # Links do not change: no tab's counts move.
        return counts.Tracker(self.tenant, self.record_type, [], record_ids=())

    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:
        found = self.records()
        now = timezone.now()
        why = f" {self.why}" if self.why else ""
        with transaction.atomic():
            mark_changed(self.tenant, [pk for pk, _ in found], self.actor, at=now)
            AuditEntry.objects.bulk_create(
                (
                    audit_entry(
                        self.tenant,
                        self.actor,
                        AuditEntry.Action.RETRY_SYNC,
                        record=Record(pk=pk, local_id=local_id, record_type=self.record_type),
                        integration=self.integration,
                        after={"last_modified": now.isoformat()},
                        summary=f"Put this {self.record_type} back into the sync{why}",
                        at=now,
                    )  # fmt: skip
                    for pk, local_id in found
                ),
                batch_size=CHUNK,
            )
        plan.counts[CHANGED] = len(found)
        return Applied(plan, None, [pk for pk, _ in found])

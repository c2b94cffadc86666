"""ChangeSet: a list of row-wise changes of one record type, planned line by line.

Each line's action decides for itself (`kinds/`); the set-wide rules are in `rules.py`; rows
are read and written by `storage.py`. A single add from the References page and a 100,000-line
CSV import are this same class; only the size differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from django.utils import timezone

from common.errors import InvalidValue
from integrations.models import Connection, Integration
from records import counts
from records.audit import Actor, audit_entry, mark_changed, save_entries, write_audit
from records.models import AuditEntry, Batch, Record, RemoteId

from . import messages, rules, storage
from .engine import ChangeSetBase, integration_sides, lock_written_tabs
from .kinds import kind_of
from .types import (
    CHANGED,
    NEW,
    REJECTED,
    REMOVED,
    UNCHANGED,
    Applied,
    Change,
    Plan,
    Planned,
    ProgressCallback,
)


@dataclass
class ChangeSet(ChangeSetBase):
    """A list of changes of one record type, for an integration or for one API connection."""

    tenant: object
    record_type: str
    actor: Actor
    kind: Batch.Kind
    changes: list[Change]
    integration: Integration | None = None
    # One change that must succeed: a rejection raises its error (add, edit, delete, API).
    strict: bool = False
    # LINK may replace a target the source is already linked to (an import); an add refuses.
    relink: bool = False
    audit_action: str = AuditEntry.Action.EDIT
    # One audit entry per written change (edits, suggestions, API), or one for the whole
    # batch (an import: the record history finds the batch through its BatchChange rows).
    audit_each: bool = True
    description: str = ""
    details: dict = field(default_factory=dict)
    # What to do about an id two lines give different meanings (an import: fix the file).
    ambiguous_advice: str = "fix the file so it appears once."
    # Records the caller created in this same transaction: already new, so their version
    # stays 1 (an API create with an id is one write, not two).
    new_record_ids: frozenset = frozenset()

    @property
    def size(self) -> int:
        """How big it is: its number of changes (a job applies it above the threshold)."""
        return len(self.changes)

    @property
    def source(self):
        return self.integration.source if self.integration else None

    @property
    def target(self):
        return self.integration.target if self.integration else None

    @cached_property
    def side_names(self) -> tuple[str, str]:
        return messages.side_names(self.integration)

    def connection_ids(self) -> set[int]:
        """Every connection whose ids the set writes."""
        ids = integration_sides(self.integration)
        for change in self.changes:
            ids |= kind_of(change.action).connections(change)
        return ids

    def lock(self) -> None:
        single = len(self.changes) == 1
        # A set of many changes takes its tabs alone; single changes share them.
        lock_written_tabs(self, self.connection_ids(), exclusive=not single)
        ids = sorted(
            {
                change.record_id
                for change in self.changes
                if change.record_id and (single or change.version is not None)
            }
        )
        if ids:
            # Of two changes to one record only one writes at a time: the second waits here,
            # then plans against what the first wrote (and is refused as stale if it carried
            # the version it was opened on).
            records = Record.objects.for_tenant(self.tenant).select_for_update()
            list(records.filter(pk__in=ids).values_list("pk"))

    def tracker(self, plan: Plan) -> counts.Tracker:
        record_ids = {line.record_id for line in plan.lines if line.record_id is not None}
        record_ids |= {change.duplicate_id for change in self.changes if change.duplicate_id}
        record_ids |= {change.record_id for change in self.changes if change.record_id}
        return counts.Tracker.for_connections(
            self.tenant, self.record_type, self.connection_ids(), record_ids
        )

    # --- plan ---

    def plan(self) -> Plan:
        result = Plan(self, [Planned(change) for change in self.changes])
        rows = RemoteId.objects.for_tenant(self.tenant).filter(record_type=self.record_type)
        rows = rows.order_by()
        for line in result.lines:
            self._clean(line)
        self._resolve_records(result, rows)
        self._load_current(result, rows)
        for line in result.lines:
            kind_of(line.change.action).build_writes(line, result, self)
        rules.reject_repeats(result.lines)
        rules.reject_ambiguous(self, result.lines)
        rules.check_versions(self, result.lines)
        for line in result.lines:
            if line.outcome == "":
                line.outcome = self._outcome(line, result)
        rules.reject_taken(self, result, rows)
        for line in result.lines:
            result.counts[line.outcome] += 1
        if self.audit_each or len(result.accepted) == 1:
            self._snapshot(result)
        return result

    def _clean(self, line: Planned) -> None:
        change = line.change
        line.source_id, line.target_id = change.source_id.strip(), change.target_id.strip()
        line.source_ref, line.target_ref = change.source_ref.strip(), change.target_ref.strip()
        if change.problem:
            line.reject(InvalidValue(change.problem))
            return
        try:
            kind_of(change.action).clean(line, self)
        except InvalidValue as error:
            line.reject(error)

    def _resolve_records(self, result: Plan, rows) -> None:
        links = [line for line in result.lines if kind_of(line.change.action).found_by_source]
        by_source = {}
        if links:
            known = storage.rows_by(
                rows.filter(connection=self.source),
                "remote_id",
                [line.source_id for line in links if line.source_id],
            )
            by_source = {row.remote_id: row.record_id for row in known}
        for line in result.lines:
            line.record_key = kind_of(line.change.action).record_key(line, by_source)

    def _load_current(self, result: Plan, rows) -> None:
        record_ids = {line.record_id for line in result.lines} | {
            line.change.duplicate_id for line in result.lines
        }
        record_ids.discard(None)
        found = storage.rows_by(
            rows.filter(connection_id__in=self.connection_ids()), "record_id", record_ids
        )
        result.current = {(row.record_id, row.connection_id): row for row in found}

    def _outcome(self, line: Planned, plan: Plan) -> str:
        changed = added = False
        for write in line.writes:
            here = plan.here(write.record, write.connection_id)
            if write.value is None:
                changed = changed or here is not None
            elif here is None:
                changed = added = True
            elif here.value != write.value:
                changed = True
        if not changed:
            return UNCHANGED
        return kind_of(line.change.action).outcome(line, plan, self, added=added)

    def _snapshot(self, plan: Plan) -> None:
        """The values before and after of each accepted line (audit entries, summaries)."""
        hex_ids = dict(
            Connection.objects.for_tenant(self.tenant)
            .filter(pk__in=self.connection_ids())
            .values_list("pk", "connection_id")
        )
        for line in plan.accepted:
            kind = kind_of(line.change.action)
            line.before, line.after = kind.snapshots(line, plan, self, hex_ids)

    # --- write ---

    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:
        accepted = plan.accepted
        if not accepted:
            return Applied(plan, None)
        tenant, now = self.tenant, timezone.now()
        batch = storage.new_batch(
            self, row_count=len(accepted), description=self._describe(accepted), at=now
        )
        new_keys = list(
            dict.fromkeys(line.record_key for line in accepted if line.record_id is None)
        )
        total = len(accepted) + len(new_keys)
        created_ids = storage.create_records(
            tenant, self.record_type, len(new_keys), self.actor, now
        )
        progress("Creating records", len(new_keys), total)
        record_of = dict(zip(new_keys, created_ids, strict=True))
        removed, added = storage.row_changes(plan, accepted, record_of)
        storage.write_rows(tenant, self.record_type, batch, removed, added)
        if added:
            storage.remember_remote_ids(tenant, batch, self.actor, at=now)
        progress("Writing references", total, total)
        retired = [kind_of(line.change.action).retire(line, tenant) for line in accepted]
        retired = [item.to_json() for item in retired if item is not None]
        existing = [
            line.record_id
            for line in accepted
            if line.record_id is not None and line.record_id not in self.new_record_ids
        ]
        mark_changed(tenant, existing, self.actor, at=now)
        batch.details = {
            **batch.details,
            **self.details,
            "created_record_ids": created_ids,
            **({"removed_records": retired} if retired else {}),
        }
        batch.save(update_fields=["details"])
        record_ids = [record_of.get(line.record_key, line.record_key) for line in accepted]
        self._audit(plan, accepted, batch, record_ids, now)
        return Applied(plan, batch, record_ids)

    def _describe(self, accepted: list[Planned]) -> str:
        if self.description:
            return self.description.format(written=len(accepted))
        if len(accepted) == 1:
            return kind_of(accepted[0].change.action).summary(accepted[0])
        return f"{Batch.Kind(self.kind).label}: {len(accepted)} {self.record_type} references"

    def _audit(self, plan: Plan, accepted, batch, record_ids, now) -> None:
        if not self.audit_each:
            self._audit_batch(plan, batch, now)
            return
        records = Record.objects.for_tenant(self.tenant).defer("data").in_bulk(record_ids)
        connections = Connection.objects.for_tenant(self.tenant).in_bulk(
            {line.change.connection_id for line in accepted if line.change.connection_id}
        )
        entries = []
        for line, record_id in zip(accepted, record_ids, strict=True):
            kind = kind_of(line.change.action)
            entries.append(
                audit_entry(
                    self.tenant,
                    self.actor,
                    self.audit_action,
                    record=records[record_id],
                    connection=kind.audit_connection(line, self, connections),
                    integration=self.integration,
                    batch=batch,
                    before=line.before,
                    after=line.after,
                    summary=kind.summary(line),
                    at=now,
                )  # fmt: skip
            )
        save_entries(entries)

    def _audit_batch(self, plan: Plan, batch, now) -> None:
        """One entry for the whole batch, with the counts of each outcome."""
        shown = ", ".join(
            f"{plan.counts[outcome]} {outcome}" for outcome in (NEW, CHANGED, UNCHANGED, REJECTED)
        )
        write_audit(
            self.tenant,
            self.actor,
            self.audit_action,
            record_type=self.record_type,
            integration=self.integration,
            batch=batch,
            connection=self.target,
            after={k: v for k, v in plan.counts.items() if k != REMOVED},
            summary=f"{batch.description}: {shown}",
            at=now,
        )

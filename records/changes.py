"""The one writer of remote ids: every change is a change set, planned, then applied.

    result = plan(change_set)      # reads only: each change is new, changed, removed,
                                   # unchanged or rejected (with a reason naming the holder)
    applied = apply(change_set)    # one transaction: plans again under locks and writes
                                   # the accepted changes as one restorable Batch

A single add from the References page and a 100,000-line CSV import are the same code path;
only the size differs. Delete-all and restore are set-based change sets (a few statements for
a million rows) behind the same `plan()` / `apply()`. No other module writes RemoteId, Batch
or BatchChange rows: the models refuse writes outside `apply()` (see `writing()`), and
tests/test_architecture.py proves no other module opens that door.

The rules (DESIGN.md), checked for every change of a set:
- ids are trimmed, 1-255 characters, without control characters;
- an id used twice within the set in either direction (one source to two targets, one target
  to two sources) rejects every line that uses it, whatever else is wrong with those lines;
- an id another record holds is refused, naming that record's link, unless a change of the
  same set moves it away (a swap);
- a change opened on an older version of its record is refused ("changed by X at T").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from django.db import IntegrityError, OperationalError, transaction
from django.db import connection as db_connection
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.errors import DomainError, InvalidValue
from common.sets import CHUNK, chunks, where_in
from integrations.models import Connection, Integration

from . import counts, locks
from .audit import Actor, audit_entry, mark_changed, source_connection_id, write_audit
from .errors import Conflict, StaleEdit
from .models import (
    AuditEntry,
    Batch,
    BatchChange,
    CustomData,
    Record,
    RemoteId,
    RemoteIdFingerprint,
    writing,
)
from .validation import clean_remote_id, clean_remote_ref

# Outcomes of a planned change.
NEW = "new"
CHANGED = "changed"
REMOVED = "removed"
UNCHANGED = "unchanged"
REJECTED = "rejected"
OUTCOMES = (NEW, CHANGED, REMOVED, UNCHANGED, REJECTED)
WRITTEN = (NEW, CHANGED, REMOVED)

# Above this many remote-id rows PostgreSQL writes go through COPY and a temporary table.
COPY_THRESHOLD = 500

ProgressCallback = Callable[[str, int, int], None]


# --- change sets ------------------------------------------------------------------------------


class Action:
    LINK = "link"  # give the record the source knows as X the target id Y (or create it)
    EDIT = "edit"  # set a record's source and target id and ref
    UNLINK = "unlink"  # remove a record's target id
    SET_ID = "set_id"  # set (or with None remove) one connection's id of a record
    MERGE = "merge"  # move a target-only duplicate's id onto the record, retire the duplicate


@dataclass(frozen=True)
class Change:
    """One intended operation: a line of an import, a row edited, an API write."""

    action: str
    line: int = 0
    record_id: int | None = None  # EDIT, UNLINK, SET_ID, MERGE (the survivor)
    source_id: str = ""
    source_ref: str = ""
    target_id: str = ""
    target_ref: str = ""
    connection_id: int | None = None  # SET_ID: whose id
    # SET_ID: None removes it. MERGE: the duplicate's id when it is not the one kept.
    remote_id: str | None = None
    remote_ref: str = ""
    duplicate_id: int | None = None  # MERGE: the record that is retired
    version: int | None = None  # the record's version the change was made on
    problem: str = ""  # found before the engine (a malformed CSV line): rejected as it is
    note: str = ""  # added to the audit summary (e.g. why a suggestion matched)


def side_names(integration) -> tuple[str, str]:
    """What the forms call the two sides: the connections' names ("Shopify", "Fortnox"), so
    an error says "Shopify id 5001 ..." like the field it is about."""
    if integration is None:
        return "Source", "Target"
    return integration.source.name, integration.target.name


@dataclass
class Row:
    pk: int
    record_id: int
    connection_id: int
    remote_id: str
    remote_ref: str


@dataclass
class Planned:
    """What plan() decided for one change."""

    change: Change
    outcome: str = ""
    reason: str = ""
    error: DomainError | None = None
    record_key: object = None  # a record id, or ("new", source_id) for a record to create
    writes: list = field(default_factory=list)  # [(record_key, connection_id, (id, ref) | None)]
    before: dict | None = None
    after: dict | None = None
    source_id: str = ""  # trimmed, also for rejected lines (the preview shows them)
    target_id: str = ""
    source_ref: str = ""
    target_ref: str = ""

    @property
    def line(self) -> int:
        return self.change.line

    @property
    def accepted(self) -> bool:
        return self.outcome in WRITTEN

    def reject(self, error: DomainError) -> None:
        self.outcome, self.reason, self.error = REJECTED, error.message, error


@dataclass
class Plan:
    change_set: object
    lines: list[Planned] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    current: dict = field(default_factory=dict)  # (record_id, connection_id) -> Row

    def of(self, outcome: str) -> list[Planned]:
        return [line for line in self.lines if line.outcome == outcome]

    @property
    def accepted(self) -> list[Planned]:
        return [line for line in self.lines if line.accepted]


@dataclass
class Applied:
    plan: Plan
    batch: Batch | None
    record_ids: list[int] = field(default_factory=list)  # records written (in change order)

    @property
    def counts(self) -> dict[str, int]:
        return self.plan.counts


class ChangeSetBase:
    """What every change set has: `tenant`, `integration` (or None), `record_type`, `actor`
    and `kind` (the Batch kind it becomes), and how to lock, plan and write it."""

    def lock(self) -> None:
        """Serialise with every other writer of the tabs it writes (see `lock_written_tabs`)."""
        lock_written_tabs(self, integration_sides(self.integration), exclusive=True)

    def plan(self) -> Plan:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:  # pragma: no cover
        raise NotImplementedError

    def tracker(self, plan: Plan) -> counts.Tracker:  # pragma: no cover - abstract
        """What keeps the reference counts of this change set (records.counts)."""
        raise NotImplementedError

    def derived_counts(self, applied: Applied) -> dict[int, dict[str, int]]:
        """The count deltas this change set derives from its own batch, by integration id,
        for the tracker's `derived` integrations (a whole-tab change): none by default."""
        return {}


def lock_written_tabs(change_set, connection_ids, *, exclusive: bool) -> None:
    """Serialise bulk changes with every other change of the References tabs they write.

    Delete-all copies rows into its batch, then deletes them: an add, edit or delete landing
    in between would be lost or recorded wrongly. The lock is per tab (integration and entity
    type), not per integration, so a job writing one tab never stops the others: bulk change
    sets take their tabs exclusively, single changes share them (records/locks.py). The tabs
    are those whose counts a change set writing ids of `connection_ids` keeps (the same
    integrations its counts.Tracker counts): every tab that shows such an id, including
    another integration's that shares a connection.

    Both also share the integration row, so saving the integration's settings waits for them.
    In a request, a lock held by a bulk change is given up after `locks.LOCK_TIMEOUT`; `apply`
    turns that into BulkChangeRunning. SQLite runs one writer at a time anyway.
    """
    if db_connection.vendor != "postgresql":
        return
    locks.limit_lock_waits()
    if change_set.integration is not None:
        table = db_connection.ops.quote_name(Integration._meta.db_table)
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {table} WHERE id = %s FOR SHARE",  # noqa: S608
                [change_set.integration.pk],
            )
    tenant, record_type = change_set.tenant, change_set.record_type
    tabs = counts.Tracker.for_connections(tenant, record_type, connection_ids).integrations
    locks.lock_tabs(tenant, record_type, tabs, exclusive=exclusive)


def integration_sides(integration) -> set[int]:
    """The connections whose ids a change set of `integration` writes: its source and target."""
    return set() if integration is None else {integration.source_id, integration.target_id}


# --- plan and apply: the two entry points ------------------------------------------------------


def plan(change_set) -> Plan:
    """Check every change against the database and the rules; writes nothing."""
    return change_set.plan()


def apply(change_set, *, progress: ProgressCallback | None = None) -> Applied:
    """Write the accepted changes in one transaction as one restorable batch.

    Plans again inside the transaction, under the change set's locks, so what changed since a
    preview is seen. A strict change set (one change that must succeed: an add, an edit, an
    API write) raises the rejection instead. When a concurrent writer wins a race at the
    database constraint, the error is the same message the plan would give now.
    """
    progress = progress or (lambda phase, done, total: None)
    try:
        with transaction.atomic(), writing():
            change_set.lock()
            # After the lock: a job waiting behind another bulk change still shows as queued.
            progress("Checking", 0, 0)
            result = change_set.plan()
            _raise_if_strict(change_set, result)
            tracker = change_set.tracker(result)
            tracker.start()
            applied = change_set.write(result, progress)
            tracker.finish(applied.record_ids, change_set.derived_counts(applied))
            return applied
    except IntegrityError as error:
        _raise_if_strict(change_set, change_set.plan())
        raise Conflict(
            "Another change to these references happened at the same time; nothing was "
            "written. Check again and retry."
        ) from error
    except OperationalError as error:
        if not locks.is_lock_timeout(error):
            raise
        # A person waited LOCK_TIMEOUT for a lock a bulk change holds: say which one.
        raise locks.bulk_change_running(
            change_set.tenant, change_set.record_type, change_set.integration
        ) from error


def _raise_if_strict(change_set, result: Plan) -> None:
    if getattr(change_set, "strict", False):
        for line in result.lines:
            if line.outcome == REJECTED:
                raise line.error


def _new_batch(change_set, *, row_count: int, description: str, at, **details) -> Batch:
    return Batch.objects.create(
        tenant=change_set.tenant,
        kind=change_set.kind,
        actor=str(change_set.actor),
        integration=change_set.integration,
        record_type=change_set.record_type,
        created_at=at,
        row_count=row_count,
        description=description[:300],
        details=details,
    )


# --- row-wise change sets ---------------------------------------------------------------------


@dataclass
class ChangeSet(ChangeSetBase):
    """A list of changes of one record type, for an integration or for one API connection."""

    tenant: object
    record_type: str
    actor: Actor
    kind: str
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

    def lock(self) -> None:
        single = len(self.changes) == 1
        connection_ids = integration_sides(self.integration) | {
            change.connection_id for change in self.changes if change.connection_id
        }
        # A set of many changes takes its tabs alone; single changes share them.
        lock_written_tabs(self, connection_ids, exclusive=not single)
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
            list(
                Record.objects.for_tenant(self.tenant)
                .select_for_update()
                .filter(pk__in=ids)
                .values_list("pk")
            )

    def tracker(self, plan: Plan) -> counts.Tracker:
        record_ids = {line.record_key for line in plan.lines if isinstance(line.record_key, int)}
        record_ids |= {change.duplicate_id for change in self.changes if change.duplicate_id}
        record_ids |= {change.record_id for change in self.changes if change.record_id}
        connection_ids = {change.connection_id for change in self.changes if change.connection_id}
        if self.integration is not None:
            connection_ids |= {self.integration.source_id, self.integration.target_id}
        return counts.Tracker.for_connections(
            self.tenant, self.record_type, connection_ids, record_ids
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
            self._build_writes(line, result.current)
        self._reject_duplicates(result.lines)
        self._reject_ambiguous(result.lines)
        self._check_versions(result.lines)
        for line in result.lines:
            if line.outcome == "":
                line.outcome = self._outcome(line, result.current)
        self._reject_taken(result, rows)
        for line in result.lines:
            result.counts[line.outcome] += 1
        if self.audit_each or len(result.accepted) == 1:
            # The values before and after, for the audit entries and the summaries.
            hex_ids = dict(
                Connection.objects.filter(pk__in=self._connections()).values_list(
                    "pk", "connection_id"
                )
            )
            for line in result.accepted:
                line.before, line.after = self._snapshots(line, result.current, hex_ids)
        return result

    @property
    def source(self):
        return self.integration.source if self.integration else None

    @property
    def target(self):
        return self.integration.target if self.integration else None

    @cached_property
    def side_names(self) -> tuple[str, str]:
        return side_names(self.integration)

    def _clean(self, line: Planned) -> None:
        change = line.change
        line.source_id, line.target_id = change.source_id.strip(), change.target_id.strip()
        line.source_ref, line.target_ref = change.source_ref.strip(), change.target_ref.strip()
        if change.problem:
            line.reject(InvalidValue(change.problem))
            return
        try:
            if change.action in (Action.LINK, Action.EDIT):
                source, target = self.side_names
                line.source_id = clean_remote_id(
                    change.source_id, field="source_id", label=f"{source} id"
                )
                if change.target_id.strip() or change.action == Action.EDIT:
                    line.target_id = clean_remote_id(
                        change.target_id, field="target_id", label=f"{target} id"
                    )
                line.source_ref = clean_remote_ref(
                    change.source_ref, field="source_ref", label=f"{source} ref"
                )
                line.target_ref = clean_remote_ref(
                    change.target_ref, field="target_ref", label=f"{target} ref"
                )
            elif change.action == Action.SET_ID:
                line.target_ref = clean_remote_ref(
                    change.remote_ref, field="remote_ref", label="Remote ref"
                )
                if change.remote_id is None:
                    if line.target_ref:
                        raise InvalidValue("A remote ref needs a remote id.", field="remote_ref")
                else:
                    line.target_id = clean_remote_id(
                        change.remote_id, field="remote_id", label="Remote id"
                    )
        except InvalidValue as error:
            line.reject(error)

    def _resolve_records(self, result: Plan, rows) -> None:
        links = [line for line in result.lines if line.change.action == Action.LINK]
        by_source = {}
        if links:
            by_source = {
                row.remote_id: row.record_id
                for row in _rows_by(
                    rows.filter(connection=self.source),
                    "remote_id",
                    [line.source_id for line in links if line.source_id],
                )
            }
        for line in result.lines:
            if line.change.action == Action.LINK:
                line.record_key = by_source.get(line.source_id, ("new", line.source_id))
            else:
                line.record_key = line.change.record_id

    def _connections(self) -> set[int]:
        ids = {c.connection_id for c in self.changes if c.action == Action.SET_ID}
        if self.integration is not None:
            ids |= {self.integration.source_id, self.integration.target_id}
        return ids

    def _load_current(self, result: Plan, rows) -> None:
        record_ids = {
            key
            for line in result.lines
            for key in (line.record_key, line.change.duplicate_id)
            if isinstance(key, int)
        }
        found = _rows_by(
            rows.filter(connection_id__in=self._connections()), "record_id", record_ids
        )
        result.current = {(row.record_id, row.connection_id): row for row in found}

    def _build_writes(self, line: Planned, current: dict) -> None:
        change, key = line.change, line.record_key
        if change.action == Action.SET_ID:
            value = None if change.remote_id is None else (line.target_id, line.target_ref)
            line.writes = [(key, change.connection_id, value)]
            return
        source, target = self.integration.source_id, self.integration.target_id
        if change.action in (Action.LINK, Action.EDIT) and not line.source_id:
            return  # rejected by _clean: nothing to take part in the checks
        here_source = current.get((key, source)) if isinstance(key, int) else None
        here_target = current.get((key, target)) if isinstance(key, int) else None
        if change.action == Action.UNLINK:
            line.writes = [(key, target, None)]
            if here_target is None and line.outcome != REJECTED:
                line.reject(
                    DomainError(
                        "This record is not linked to a target; there is nothing to delete."
                    )
                )
            return
        if change.action == Action.MERGE:
            duplicate_row = current.get((change.duplicate_id, target))
            # The duplicate's id as the person saw it: the one moved over, or (keeping the
            # survivor's own target id) the one that goes away with the duplicate.
            duplicate_id = change.remote_id or line.target_id
            keeps_own = here_target is not None and here_target.remote_id == line.target_id
            if (
                line.outcome != REJECTED
                and here_target is not None
                and not (keeps_own or self.relink)
            ):
                line.reject(
                    Conflict(
                        f"{self.side_names[0]} id {here_source.remote_id if here_source else ''} "
                        f"is already linked to {self.side_names[1]} id {here_target.remote_id}; "
                        "nothing was merged.",
                        field="target_id",
                        holder=_record(self.tenant, key),
                    )
                )
            elif line.outcome != REJECTED and (
                duplicate_row is None or duplicate_row.remote_id != duplicate_id
            ):
                line.reject(DomainError("This suggestion no longer applies: the records changed."))
            line.writes = [
                (change.duplicate_id, target, None),
                (key, target, (line.target_id, line.target_ref)),
            ]
            return
        if change.action == Action.LINK:
            # An empty ref keeps the current one; so does an unchanged target id.
            if not line.source_ref and here_source is not None:
                line.source_ref = here_source.remote_ref
            if not line.target_ref and here_target and here_target.remote_id == line.target_id:
                line.target_ref = here_target.remote_ref
            if not line.target_id:
                # "Not linked" (what export writes): fine where it is not linked here either.
                if line.outcome != REJECTED:
                    if here_source is not None and here_target is None:
                        line.outcome = UNCHANGED
                    else:
                        line.reject(
                            InvalidValue(f"{self.side_names[1]} id is required.", field="target_id")
                            if here_target is None
                            else InvalidValue(
                                f"{self.side_names[1]} id is empty but {line.source_id} is "
                                "linked to "
                                f"{here_target.remote_id}; delete the reference on the "
                                "References page to unlink it.",
                                field="target_id",
                            )
                        )
                return
            if (
                not self.relink
                and here_target is not None
                and here_target.remote_id != line.target_id
                and line.outcome != REJECTED
            ):
                line.reject(
                    Conflict(
                        f"{self.side_names[0]} id {line.source_id} is already linked to "
                        f"{self.side_names[1]} id {here_target.remote_id}. "
                        "Edit that reference instead.",
                        field="source_id",
                        holder=_record(self.tenant, key),
                    )
                )
        line.writes = [
            (key, source, (line.source_id, line.source_ref)),
            (key, target, (line.target_id, line.target_ref)),
        ]

    @staticmethod
    def _reject_duplicates(lines: list[Planned]) -> None:
        """The same change twice keeps the first line (a file pasted into itself)."""
        first: dict = {}
        for line in lines:
            if line.outcome == REJECTED or not line.writes:
                continue
            signature = (line.change.action, line.record_key, tuple(line.writes))
            if signature in first:
                line.reject(InvalidValue(f"Duplicate of line {first[signature].line}."))
            else:
                first[signature] = line

    def _reject_ambiguous(self, lines: list[Planned]) -> None:
        """An id given two meanings within the set rejects every line that uses it.

        Lines rejected for another reason take part too: a file that says "S1 -> T1" on one
        line and "S2 -> T1" on another is ambiguous about T1 whatever else is wrong with them.
        """
        live = [line for line in lines if line.writes and "Duplicate of line" not in line.reason]
        by_slot: dict = defaultdict(list)  # (record, connection) -> lines: one id per slot
        by_id: dict = defaultdict(list)  # (connection, id) -> lines: one record per id
        for line in live:
            for key, connection_id, value in line.writes:
                if value is not None and value[0]:
                    by_slot[(key, connection_id)].append((line, value[0]))
                    by_id[(connection_id, value[0])].append((line, key))
        ambiguous: dict[int, str] = {}
        for (key, connection_id), uses in by_slot.items():
            if len(uses) > 1 and len({value for _, value in uses}) > 1:
                first = uses[0][0]
                label, value = self._slot_label(first, key, connection_id)
                self._mark(ambiguous, [line for line, _ in uses], label, value)
        for (connection_id, value), uses in by_id.items():
            if len(uses) > 1 and len({key for _, key in uses}) > 1:
                self._mark(ambiguous, [line for line, _ in uses], self._label(connection_id), value)
        for line in live:
            if id(line) in ambiguous:
                line.reject(InvalidValue(ambiguous[id(line)]))

    def _slot_label(self, line: Planned, key, connection_id) -> tuple[str, str]:
        if line.change.action == Action.LINK:
            return f"{self.side_names[0]} id", line.source_id
        return "Record", str(key)

    def _mark(self, ambiguous: dict, lines: list[Planned], label: str, value: str) -> None:
        numbers = sorted({line.line for line in lines})
        shown = ", ".join(str(number) for number in numbers[:5]) + (
            "..." if len(numbers) > 5 else ""
        )
        message = (
            f"{label} {value} is on more than one line ({shown}) with different ids; "
            f"{self.ambiguous_advice}"
        )
        for line in lines:
            ambiguous.setdefault(id(line), message)

    def _label(self, connection_id) -> str:
        if self.integration is not None:
            if connection_id == self.integration.source_id:
                return f"{self.side_names[0]} id"
            if connection_id == self.integration.target_id:
                return f"{self.side_names[1]} id"
        return "Remote id"

    def _check_versions(self, lines: list[Planned]) -> None:
        versioned = [
            line for line in lines if line.change.version is not None and line.outcome != REJECTED
        ]
        if not versioned:
            return
        records = Record.objects.for_tenant(self.tenant).defer("data")
        ids = {line.record_key for line in versioned}
        current = {record.pk: record for record in records.filter(pk__in=ids)}
        for line in versioned:
            record = current.get(line.record_key)
            if record is None:
                line.reject(DomainError("This record no longer exists.", code="gone"))
            elif record.version != line.change.version:
                line.reject(self.stale_error(record))

    def stale_error(self, record: Record) -> StaleEdit:
        snapshot = (
            reference_snapshot(self.integration, record) if self.integration is not None else {}
        )
        return stale_edit(record, {**snapshot, "version": record.version})

    def _outcome(self, line: Planned, current: dict) -> str:
        changed = False
        added = False
        for key, connection_id, value in line.writes:
            here = current.get((key, connection_id)) if isinstance(key, int) else None
            if value is None:
                changed = changed or here is not None
            elif here is None:
                changed = added = True
            elif (here.remote_id, here.remote_ref) != value:
                changed = True
        if not changed:
            return UNCHANGED
        if line.change.action == Action.UNLINK:
            return REMOVED
        if line.change.action == Action.SET_ID:
            target_side = line.writes[0]
            if target_side[2] is None:
                return REMOVED
            return NEW if added else CHANGED
        if line.change.action == Action.MERGE:
            return NEW
        # A link is new when the record had no target id; a relink or edit is a change.
        target = self.integration.target_id
        key = line.record_key
        return NEW if not isinstance(key, int) or (key, target) not in current else CHANGED

    def _reject_taken(self, result: Plan, rows) -> None:
        """An id another record holds is refused, unless a line of this set moves it away.

        Rejections can undo such a move, so repeat until nothing changes.
        """
        wanted: dict[int, set[str]] = defaultdict(set)
        for line in result.lines:
            if line.accepted:
                for _, connection_id, value in line.writes:
                    if value is not None:
                        wanted[connection_id].add(value[0])
        holders = {}
        for connection_id, ids in wanted.items():
            for row in _rows_by(rows.filter(connection_id=connection_id), "remote_id", ids):
                holders[(connection_id, row.remote_id)] = row
        current = result.current
        while True:
            moving = set()
            for line in result.lines:
                if not line.accepted:
                    continue
                for key, connection_id, value in line.writes:
                    here = current.get((key, connection_id)) if isinstance(key, int) else None
                    if here is not None and (value is None or value[0] != here.remote_id):
                        moving.add((key, connection_id))
            rejected_now = 0
            for line in result.lines:
                if not line.accepted:
                    continue
                for key, connection_id, value in line.writes:
                    holder = holders.get((connection_id, value[0])) if value else None
                    if holder is None or holder.record_id == key:
                        continue
                    if (holder.record_id, connection_id) in moving:
                        continue
                    line.reject(self._taken_error(line, holder, connection_id))
                    rejected_now += 1
                    break
            if not rejected_now:
                break

    def _taken_error(self, line: Planned, holder: Row, connection_id: int) -> Conflict:
        tenant, record_type = self.tenant, self.record_type
        record = _record(tenant, holder.record_id)
        integration = self.integration
        if integration is None or connection_id not in (
            integration.source_id,
            integration.target_id,
        ):
            connection = Connection.objects.for_tenant(tenant).get(pk=connection_id)
            return Conflict(
                f"Remote id {holder.remote_id} already belongs to {record_type} "
                f"{record.local_id} in {connection.name}.",
                field="remote_id",
                holder=record,
            )
        if connection_id == integration.target_id:
            linked_from = _other_id(tenant, holder.record_id, integration.source_id)
            return Conflict(
                f"{integration.target.name} id {holder.remote_id} is already linked to "
                f"{integration.source.name} id {linked_from}."
                if linked_from
                else f"{integration.target.name} id {holder.remote_id} already belongs to "
                f"{record_type} "
                f"{record.local_id}, which {integration.source} does not know; see Suggested "
                "links.",
                field="target_id",
                holder=record,
            )
        linked_to = _other_id(tenant, holder.record_id, integration.target_id)
        return Conflict(
            f"{integration.source.name} id {holder.remote_id} is already used by another "
            f"{record_type}"
            + (
                f" (linked to {integration.target.name} id {linked_to})."
                if linked_to
                else " (not linked)."
            ),
            field="source_id",
            holder=record,
        )

    # --- write ---

    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:
        tenant, actor = self.tenant, self.actor
        accepted = plan.accepted
        if not accepted:
            return Applied(plan, None)
        now = timezone.now()
        batch = _new_batch(
            self,
            row_count=len(accepted),
            description=self._describe(accepted),
            at=now,
        )
        new_keys = list(
            dict.fromkeys(
                line.record_key for line in accepted if not isinstance(line.record_key, int)
            )
        )
        total = len(accepted) + len(new_keys)
        created_ids = _create_records(tenant, self.record_type, len(new_keys), actor, now)
        progress("Creating records", len(new_keys), total)
        record_of = dict(zip(new_keys, created_ids, strict=True))
        removed, added = [], []
        for line in accepted:
            for key, connection_id, value in line.writes:
                here = plan.current.get((key, connection_id)) if isinstance(key, int) else None
                if here is not None and (here.remote_id, here.remote_ref) == value:
                    continue  # this side stays as it is
                if here is not None:
                    removed.append(
                        (here.pk, here.record_id, connection_id, here.remote_id, here.remote_ref)
                    )
                if value is not None:
                    added.append((record_of.get(key, key), connection_id, *value))
        _write_rows(tenant, self.record_type, batch, removed, added)
        if added:
            remember_remote_ids(tenant, batch, actor, at=now)
        progress("Writing references", total, total)
        snapshots = [
            retire_duplicate(tenant, line.change.duplicate_id, survivor_id=line.record_key)
            for line in accepted
            if line.change.action == Action.MERGE
        ]
        existing = [
            line.record_key
            for line in accepted
            if isinstance(line.record_key, int) and line.record_key not in self.new_record_ids
        ]
        mark_changed(tenant, existing, actor, at=now)
        batch.details = {
            **batch.details,
            **self.details,
            "created_record_ids": created_ids,
            **({"removed_records": snapshots} if snapshots else {}),
        }
        batch.save(update_fields=["details"])
        record_ids = [record_of.get(line.record_key, line.record_key) for line in accepted]
        self._audit(plan, accepted, batch, record_ids, now)
        return Applied(plan, batch, record_ids)

    def _describe(self, accepted: list[Planned]) -> str:
        if self.description:
            return self.description.format(written=len(accepted))
        if len(accepted) == 1:
            return self._summary(accepted[0])
        return f"{Batch.Kind(self.kind).label}: {len(accepted)} {self.record_type} references"

    def _audit(self, plan: Plan, accepted, batch, record_ids, now) -> None:
        connection = self.target
        if not self.audit_each:
            write_audit(
                self.tenant,
                self.actor,
                self.audit_action,
                record_type=self.record_type,
                integration=self.integration,
                batch=batch,
                connection=connection,
                after={k: v for k, v in plan.counts.items() if k != REMOVED},
                summary=f"{batch.description}: "
                + ", ".join(
                    f"{plan.counts[outcome]} {outcome}"
                    for outcome in (NEW, CHANGED, UNCHANGED, REJECTED)
                ),
                at=now,
            )
            return
        records = Record.objects.for_tenant(self.tenant).defer("data").in_bulk(record_ids)
        connections = Connection.objects.for_tenant(self.tenant).in_bulk(
            {line.change.connection_id for line in accepted if line.change.connection_id}
        )
        entries = []
        for line, record_id in zip(accepted, record_ids, strict=True):
            if line.change.action == Action.SET_ID:
                connection = connections[line.change.connection_id]
            entries.append(
                audit_entry(
                    self.tenant,
                    self.actor,
                    self.audit_action,
                    record=records[record_id],
                    connection=connection,
                    integration=self.integration,
                    batch=batch,
                    before=line.before,
                    after=line.after,
                    summary=self._summary(line),
                    at=now,
                )
            )
        AuditEntry.objects.bulk_create(entries)

    def _snapshots(self, line: Planned, current: dict, hex_ids: dict) -> tuple:
        """The values before and after, as the audit trail and the history show them."""
        key = line.record_key
        if line.change.action == Action.SET_ID:
            connection_id = line.change.connection_id
            here = current.get((key, connection_id)) if isinstance(key, int) else None
            hex_id = hex_ids[connection_id]
            value = line.writes[0][2]
            before = (
                {
                    "connection_id": hex_id,
                    "remote_id": here.remote_id,
                    "remote_ref": here.remote_ref,
                }
                if here
                else None
            )
            after = (
                {"connection_id": hex_id, "remote_id": value[0], "remote_ref": value[1]}
                if value
                else None
            )
            return before, after
        integration = self.integration
        before = {}
        for side, connection_id in (
            ("source", integration.source_id),
            ("target", integration.target_id),
        ):
            here = current.get((key, connection_id)) if isinstance(key, int) else None
            before[f"{side}_id"] = here.remote_id if here else None
            before[f"{side}_ref"] = here.remote_ref if here else None
        after = dict(before)
        for write_key, connection_id, value in line.writes:
            if write_key != key:
                continue
            side = "source" if connection_id == integration.source_id else "target"
            after[f"{side}_id"] = value[0] if value else None
            after[f"{side}_ref"] = value[1] if value else None
        if not isinstance(key, int):
            before = None
        return before, after

    def _summary(self, line: Planned) -> str:
        action, change = line.change.action, line.change
        before, after = line.before, line.after
        if action == Action.SET_ID:
            if after is None:
                return f"Removed remote id {before['remote_id']}"
            if before is None:
                return f"Set remote id {after['remote_id']}"
            return f"Changed remote id {before['remote_id']} to {after['remote_id']}"
        if action == Action.UNLINK:
            return f"Deleted reference {before['source_id']} → {before['target_id']}"
        if action == Action.MERGE:
            return f"Linked {after['source_id']} to {after['target_id']}" + (
                f" ({change.note})" if change.note else ""
            )
        if action == Action.LINK and (before is None or not before.get("target_id")):
            return f"Linked {line.source_id} to {line.target_id}"
        return describe_edit(before or {}, after)


def describe_edit(before: dict, after: dict) -> str:
    parts = []
    for side in ("source", "target"):
        for name in ("id", "ref"):
            key = f"{side}_{name}"
            if (before.get(key) or None) != (after.get(key) or None):
                parts.append(f"{side} {name} {before.get(key) or '-'} → {after.get(key) or '-'}")
    return "Changed " + ", ".join(parts) if parts else "No change"


# --- reading helpers ----------------------------------------------------------------------------


ROW_FIELDS = ("pk", "record_id", "connection_id", "remote_id", "remote_ref")


def _rows_by(queryset, lookup: str, values: Iterable) -> list[Row]:
    """The rows of `queryset` whose `lookup` column is one of `values` (common.sets)."""
    return [
        Row(*found)
        for rows in where_in(queryset, lookup, values)
        for found in rows.values_list(*ROW_FIELDS)
    ]


def _record(tenant, record_id):
    if not isinstance(record_id, int):
        return None
    return Record.objects.for_tenant(tenant).defer("data").filter(pk=record_id).first()


def _other_id(tenant, record_id: int, connection_id: int) -> str | None:
    return (
        RemoteId.objects.for_tenant(tenant)
        .filter(record_id=record_id, connection_id=connection_id)
        .values_list("remote_id", flat=True)
        .first()
    )


def reference_snapshot(integration, record: Record) -> dict:
    """A reference (source and target id and ref of one record) as history and errors show it."""
    rows = {
        row.connection_id: row
        for row in RemoteId.objects.for_tenant(integration.tenant).filter(
            record=record, connection__in=[integration.source_id, integration.target_id]
        )
    }
    source, target = rows.get(integration.source_id), rows.get(integration.target_id)
    return {
        "source_id": source.remote_id if source else None,
        "source_ref": source.remote_ref if source else None,
        "target_id": target.remote_id if target else None,
        "target_ref": target.remote_ref if target else None,
    }


def stale_edit(record: Record, current: dict) -> StaleEdit:
    """The one stale-edit error: the References row, custom data and the API (412) use it."""
    when = timezone.localtime(record.last_modified).strftime("%Y-%m-%d %H:%M:%S")
    return StaleEdit(
        f"Changed by {record.last_modified_by} at {when} since you opened it. "
        "Your edit was not saved; check the current values and try again.",
        changed_by=record.last_modified_by,
        changed_at=record.last_modified,
        current=current,
        current_version=record.version,
    )


def claim_version(record: Record, version: int | None) -> Record:
    """Lock the record and check it is still at `version` (None: any); StaleEdit if not.

    The one optimistic-locking check: inline reference edits (through the change set's
    versions), custom-data edits and the API's If-Match all end here.
    """
    current = Record.objects.for_tenant(record.tenant).select_for_update().get(pk=record.pk)
    if version is not None and current.version != version:
        raise stale_edit(current, {"version": current.version})
    return current


# --- writing rows ---------------------------------------------------------------------------------


def _create_records(tenant, record_type: str, count: int, actor: Actor, now) -> list[int]:
    """`count` new empty records of the type; their ids in creation order."""
    if not count:
        return []
    by = str(actor)
    source_connection = source_connection_id(tenant, actor)
    if db_connection.vendor == "postgresql" and count > COPY_THRESHOLD:
        # One statement: the rows and their local ids (32 hex, like new_hex_id) are made by
        # PostgreSQL, not built in Python and sent row by row.
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_table(Record)} (tenant_id, local_id, record_type, data, "  # noqa: S608
                "created_at, last_modified, last_modified_by, record_source, "
                "source_connection_id, version) "
                "SELECT %s, replace(gen_random_uuid()::text, '-', ''), %s, '{}', %s, %s, %s, %s, "
                "%s::bigint, 1 FROM generate_series(1, %s) RETURNING id",
                [tenant.pk, record_type, now, now, by, by, source_connection, count],
            )
            return sorted(value for (value,) in cursor.fetchall())
    ids = []
    for chunk in chunks(list(range(count))):
        records = Record.objects.bulk_create(
            Record(
                tenant=tenant,
                record_type=record_type,
                created_at=now,
                last_modified=now,
                last_modified_by=by,
                record_source=by,
                source_connection_id=source_connection,
            )
            for _ in chunk
        )
        ids += [record.pk for record in records]
    return ids


def _write_rows(tenant, record_type: str, batch: Batch, removed: list, added: list) -> None:
    """Delete the `removed` rows, insert the `added` ones, record both in the batch.

    removed = [(pk, record_id, connection_id, remote_id, remote_ref)],
    added = [(record_id, connection_id, remote_id, remote_ref)]. Old rows go first, so an id
    freed by one change can be taken by another (a swap).
    """
    if db_connection.vendor == "postgresql" and len(removed) + len(added) > COPY_THRESHOLD:
        _write_rows_copy(tenant, record_type, batch, removed, added)
        return
    for chunk in chunks([pk for pk, *_ in removed]):
        RemoteId.objects.for_tenant(tenant).filter(pk__in=chunk).delete()
    RemoteId.objects.bulk_create(
        (
            RemoteId(
                tenant=tenant,
                record_id=record_id,
                connection_id=connection_id,
                record_type=record_type,
                remote_id=remote_id,
                remote_ref=remote_ref,
            )
            for record_id, connection_id, remote_id, remote_ref in added
        ),
        batch_size=CHUNK,
    )
    changes = [
        (BatchChange.Change.REMOVED, record_id, connection_id, remote_id, remote_ref)
        for _, record_id, connection_id, remote_id, remote_ref in removed
    ] + [(BatchChange.Change.ADDED, *row) for row in added]
    BatchChange.objects.bulk_create(
        (
            BatchChange(
                tenant=tenant,
                batch=batch,
                change=change,
                record_id=record_id,
                connection_id=connection_id,
                record_type=record_type,
                remote_id=remote_id,
                remote_ref=remote_ref,
            )
            for change, record_id, connection_id, remote_id, remote_ref in changes
        ),
        batch_size=CHUNK,
    )


def _write_rows_copy(tenant, record_type: str, batch: Batch, removed: list, added: list) -> None:
    """The same writes on PostgreSQL for big sets: rows go as tuples through COPY into a
    temporary table, then a few set-based statements (building half a million model
    instances was most of the time of a 100k-row import)."""
    remote_ids = RemoteId._meta.db_table
    changes = BatchChange._meta.db_table
    with db_connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE refdesk_change_rows (ord integer, change varchar(10), "
            "old_pk bigint, record_id bigint, connection_id bigint, remote_id text, "
            "remote_ref text) ON COMMIT DROP"
        )
        with cursor.copy(
            "COPY refdesk_change_rows (ord, change, old_pk, record_id, connection_id, "
            "remote_id, remote_ref) FROM STDIN"
        ) as copy:
            order = 0
            for old_pk, record_id, connection_id, remote_id, remote_ref in removed:
                order += 1
                copy.write_row(
                    (order, "removed", old_pk, record_id, connection_id, remote_id, remote_ref)
                )
            for record_id, connection_id, remote_id, remote_ref in added:
                order += 1
                copy.write_row(
                    (order, "added", None, record_id, connection_id, remote_id, remote_ref)
                )
        cursor.execute("ANALYZE refdesk_change_rows")
        cursor.execute(
            f"DELETE FROM {remote_ids} r USING refdesk_change_rows t "  # noqa: S608
            "WHERE t.change = 'removed' AND r.id = t.old_pk AND r.tenant_id = %s",
            [tenant.pk],
        )
        cursor.execute(
            f"INSERT INTO {remote_ids} (tenant_id, record_id, connection_id, "  # noqa: S608
            "record_type, remote_id, remote_ref) SELECT %s, record_id, connection_id, %s, "
            "remote_id, remote_ref FROM refdesk_change_rows WHERE change = 'added' ORDER BY ord",
            [tenant.pk, record_type],
        )
        cursor.execute(
            f"INSERT INTO {changes} (tenant_id, batch_id, change, record_id, "  # noqa: S608
            "connection_id, record_type, remote_id, remote_ref) SELECT %s, %s, change, "
            "record_id, connection_id, %s, remote_id, remote_ref FROM refdesk_change_rows "
            "ORDER BY ord",
            [tenant.pk, batch.pk, record_type],
        )
        cursor.execute("DROP TABLE refdesk_change_rows")


# --- merged duplicates: retired by a MERGE, brought back by a restore --------------------------


def retire_duplicate(tenant, duplicate_id: int, *, survivor_id: int) -> dict:
    """Move what a merged duplicate holds onto the survivor, delete it; return its snapshot.

    Its own remote-id rows were already removed (and recorded) by the MERGE's writes. The
    snapshot holds what restoring needs: its fields, the custom data and audit entries moved
    to the survivor, the custom data dropped because the survivor had the same key, and other
    batches' BatchChange rows of it (deleting the record cascades to them).
    """
    duplicate = Record.objects.for_tenant(tenant).get(pk=duplicate_id)
    custom_data = CustomData.objects.for_tenant(tenant)
    taken = set(
        custom_data.filter(record_id=survivor_id).values_list("connection_id", "module_id", "key")
    )
    custom = list(custom_data.filter(record=duplicate))
    dropped = [item for item in custom if (item.connection_id, item.module_id, item.key) in taken]
    kept = [item.pk for item in custom if item not in dropped]
    custom_data.filter(pk__in=[item.pk for item in dropped]).delete()
    custom_data.filter(pk__in=kept).update(record_id=survivor_id)
    audit = AuditEntry.objects.for_tenant(tenant).filter(record=duplicate)
    audit_ids = list(audit.values_list("pk", flat=True))
    audit.update(record_id=survivor_id)
    # Deleting the record cascades to its BatchChange rows (this batch's included): keep them.
    batch_changes = list(
        BatchChange.objects.for_tenant(tenant)
        .filter(record=duplicate)
        .values("batch_id", "change", "connection_id", "record_type", "remote_id", "remote_ref")
    )
    snapshot = {
        "pk": duplicate.pk,
        "local_id": duplicate.local_id,
        "record_type": duplicate.record_type,
        "data": duplicate.data,
        "created_at": duplicate.created_at.isoformat(),
        "last_modified": duplicate.last_modified.isoformat(),
        "last_modified_by": duplicate.last_modified_by,
        "record_source": duplicate.record_source,
        "source_connection_id": duplicate.source_connection_id,
        "source_code": duplicate.source_code,
        "version": duplicate.version,
        "survivor_id": survivor_id,
        "custom_data_ids": kept,
        "dropped_custom_data": [
            {
                "connection_id": item.connection_id,
                "module_id": item.module_id,
                "key": item.key,
                "type": item.type,
                "value": item.value,
            }
            for item in dropped
        ],
        "audit_entry_ids": audit_ids,
        "batch_changes": batch_changes,
    }
    duplicate.delete()
    return snapshot


def remember_remote_ids(tenant, batch: Batch, actor: Actor, *, at) -> None:
    """Keep each remote id's fingerprint (RemoteIdFingerprint) for the ids a batch added.

    One statement for any size, from the batch's "added" rows. A person vouches for what they
    write: their change sets the fingerprint anew. A sync does not: the fingerprint stays as
    first seen, and a write that puts the id on another record, or changes the ref it had, marks
    it reused (the remote system gave the id to something else after a wipe).
    """
    fingerprints = _table(RemoteIdFingerprint)
    changed = (
        f"({fingerprints}.record_id <> excluded.record_id OR ({fingerprints}.remote_ref <> '' "
        f"AND {fingerprints}.remote_ref <> excluded.remote_ref))"
    )
    if actor.kind == "user":
        on_conflict = (
            "record_id = excluded.record_id, local_id = excluded.local_id, "
            "remote_ref = excluded.remote_ref, first_seen = excluded.first_seen, "
            "reused_at = NULL, reused_by = ''"
        )
        params = []
    else:
        newly = f"{fingerprints}.reused_at IS NULL AND {changed}"
        on_conflict = (
            f"reused_at = CASE WHEN {newly} THEN excluded.first_seen "
            f"ELSE {fingerprints}.reused_at END, "
            f"reused_by = CASE WHEN {newly} THEN %s ELSE {fingerprints}.reused_by END, "
            f"remote_ref = CASE WHEN {fingerprints}.remote_ref = '' THEN excluded.remote_ref "
            f"ELSE {fingerprints}.remote_ref END"
        )
        params = [str(actor)]
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {fingerprints} (tenant_id, connection_id, record_type, "  # noqa: S608
            "remote_id, record_id, local_id, remote_ref, first_seen, reused_by, "
            "acknowledged_by) "
            "SELECT bc.tenant_id, bc.connection_id, bc.record_type, bc.remote_id, "
            "bc.record_id, rec.local_id, bc.remote_ref, %s, '', '' "
            f"FROM {_table(BatchChange)} bc JOIN {_table(Record)} rec ON rec.id = bc.record_id "
            "WHERE bc.tenant_id = %s AND bc.batch_id = %s AND bc.change = %s "
            "ON CONFLICT (tenant_id, connection_id, record_type, remote_id) "
            f"DO UPDATE SET {on_conflict}",
            [at, tenant.pk, batch.pk, BatchChange.Change.ADDED, *params],
        )


def _put_back_records(tenant, snapshots: list[dict]) -> None:
    if not snapshots:
        return
    Record.objects.bulk_create(
        Record(
            pk=snap["pk"],
            tenant=tenant,
            local_id=snap["local_id"],
            record_type=snap["record_type"],
            data=snap["data"],
            created_at=parse_datetime(snap["created_at"]),
            last_modified=parse_datetime(snap["last_modified"]),
            last_modified_by=snap["last_modified_by"],
            record_source=snap["record_source"],
            # Snapshots taken before recordSource had these keys lack them.
            source_connection_id=snap.get("source_connection_id"),
            source_code=snap.get("source_code", ""),
            version=snap["version"],
        )
        for snap in snapshots
    )
    CustomData.objects.bulk_create(
        CustomData(tenant=tenant, record_id=snap["pk"], **item)
        for snap in snapshots
        for item in snap["dropped_custom_data"]
    )
    # Its rows in batches that still exist, the restored batch's own included: the restore
    # then puts back the remote ids they recorded as removed.
    live_batches = set(
        Batch.objects.for_tenant(tenant)
        .filter(pk__in={c["batch_id"] for snap in snapshots for c in snap["batch_changes"]})
        .values_list("pk", flat=True)
    )
    BatchChange.objects.bulk_create(
        BatchChange(tenant=tenant, record_id=snap["pk"], **change)
        for snap in snapshots
        for change in snap["batch_changes"]
        if change["batch_id"] in live_batches
    )
    for snap in snapshots:
        CustomData.objects.for_tenant(tenant).filter(
            pk__in=snap["custom_data_ids"], record_id=snap["survivor_id"]
        ).update(record_id=snap["pk"])
        AuditEntry.objects.for_tenant(tenant).filter(pk__in=snap["audit_entry_ids"]).update(
            record_id=snap["pk"]
        )


# --- set-based change sets: delete all, restore ----------------------------------------------


def linked_target_rows(integration, record_type: str):
    """The target rows of every reference of one entity type of an integration."""
    tenant = integration.tenant
    source_rows = RemoteId.objects.for_tenant(tenant).filter(
        connection=integration.source, record_type=record_type, record_id=OuterRef("record_id")
    )
    return (
        RemoteId.objects.for_tenant(tenant)
        .filter(connection=integration.target, record_type=record_type)
        .filter(Exists(source_rows))
    )


def _table(model) -> str:
    return db_connection.ops.quote_name(model._meta.db_table)


@dataclass
class DeleteAll(ChangeSetBase):
    """Remove every target id of one entity type of an integration: set-based, one batch.

    The set is derived here from tenant + integration + entity type, never from ids a browser
    sent. Rows are copied into BatchChange so the batch can be restored.
    """

    integration: Integration
    record_type: str
    actor: Actor
    kind: str = Batch.Kind.DELETE_ALL

    @property
    def tenant(self):
        return self.integration.tenant

    @property
    def size(self) -> int:
        """How big it is: the references it removes, as the engine keeps them counted."""
        return counts.counts_of(self.integration, self.record_type).linked

    def plan(self) -> Plan:
        result = Plan(self)
        result.counts[REMOVED] = linked_target_rows(self.integration, self.record_type).count()
        return result

    def tracker(self, plan: Plan) -> counts.Tracker:
        # Every tab that shows these target ids changes. This integration's counts follow
        # from the batch (`derived_counts`); another integration sharing the connection (rare)
        # is diffed over the records that lose their target id.
        tracker = counts.Tracker.for_connections(
            self.tenant,
            self.record_type,
            [self.integration.target_id],
            record_ids=(),
            derived=[self.integration],
        )
        if tracker.diffed:
            tracker.record_ids = set(
                linked_target_rows(self.integration, self.record_type).values_list(
                    "record_id", flat=True
                )
            )
        return tracker

    def derived_counts(self, applied: Applied) -> dict[int, dict[str, int]]:
        # Every reference of the tab was linked; now each is unlinked, and lost to this batch.
        removed = applied.counts[REMOVED]
        return {
            self.integration.pk: {
                counts.LINKED: -removed,
                counts.UNLINKED: removed,
                counts.LOST: removed,
            }
        }

    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:
        tenant, integration, record_type = self.tenant, self.integration, self.record_type
        total = plan.counts[REMOVED]
        now = timezone.now()
        batch = _new_batch(self, row_count=0, description="", at=now)
        progress("Saving the references to restore", 0, total)
        select_sql, params = (
            linked_target_rows(integration, record_type)
            .values_list("record_id", "connection_id", "record_type", "remote_id", "remote_ref")
            .query.sql_with_params()
        )
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_table(BatchChange)} "  # noqa: S608 (table names, not input)
                "(tenant_id, batch_id, change, record_id, connection_id, record_type, remote_id, "
                f"remote_ref) SELECT %s, %s, %s, sub.* FROM ({select_sql}) sub",
                [tenant.pk, batch.pk, BatchChange.Change.REMOVED, *params],
            )
            count = cursor.rowcount
        progress("Removing the target ids", count // 3, count)
        changed = BatchChange.objects.for_tenant(tenant).filter(batch=batch).values("record_id")
        RemoteId.objects.for_tenant(tenant).filter(
            connection=integration.target, record_type=record_type, record_id__in=changed
        ).delete()
        progress("Marking the records changed", 2 * count // 3, count)
        mark_changed(tenant, changed, self.actor, at=now)
        batch.row_count = count
        batch.description = (
            f"Deleted all {count} {record_type} references of "
            f"{integration.source.name} → {integration.target.name}"
        )
        batch.save(update_fields=["row_count", "description"])
        write_audit(
            tenant,
            self.actor,
            AuditEntry.Action.DELETE_ALL,
            record_type=record_type,
            integration=integration,
            connection=integration.target,
            batch=batch,
            before={"count": count},
            after={"count": 0},
            summary=batch.description,
            at=now,
        )
        plan.counts[REMOVED] = count
        progress("Done", count, count)
        return Applied(plan, batch)


class RestoreConflict(DomainError):
    status = 409


@dataclass
class Restore(ChangeSetBase):
    """Undo a batch: put back the rows it removed, take away the rows it added.

    Refused as a whole (nothing changes) when an id it would put back now belongs to another
    record, or when the batch was already undone.
    """

    batch: Batch
    actor: Actor
    kind: str = "restore"

    @property
    def tenant(self):
        return self.batch.tenant

    @property
    def integration(self):
        return self.batch.integration

    @property
    def record_type(self):
        return self.batch.record_type

    def lock(self) -> None:
        connection_ids = integration_sides(self.integration)
        if not connection_ids:
            # A batch of no integration (an API connection's own id): the connections it wrote.
            connection_ids = set(
                BatchChange.objects.for_tenant(self.tenant)
                .filter(batch=self.batch)
                .order_by()
                .values_list("connection_id", flat=True)
                .distinct()
            )
        lock_written_tabs(self, connection_ids, exclusive=True)
        self.batch = Batch.objects.for_tenant(self.tenant).select_for_update().get(pk=self.batch.pk)

    def _still_added(self):
        """The remote-id rows this batch added that are still there, unchanged."""
        added = self._changes(BatchChange.Change.ADDED)
        return RemoteId.objects.for_tenant(self.tenant).filter(
            Exists(
                added.filter(
                    record_id=OuterRef("record_id"),
                    connection_id=OuterRef("connection_id"),
                    remote_id=OuterRef("remote_id"),
                )
            )
        )

    def _changes(self, change: str):
        return BatchChange.objects.for_tenant(self.tenant).filter(batch=self.batch, change=change)

    @property
    def _restores_a_tab(self) -> bool:
        """Undoing a delete-all: its counts follow from the batch (`derived_counts`)."""
        return self.batch.kind == Batch.Kind.DELETE_ALL and self.integration is not None

    def tracker(self, plan: Plan) -> counts.Tracker:
        rows = BatchChange.objects.for_tenant(self.tenant).filter(batch=self.batch).order_by()
        connection_ids = set(rows.values_list("connection_id", flat=True).distinct())
        derived = [self.integration] if self._restores_a_tab else []
        tracker = counts.Tracker.for_connections(
            self.tenant, self.record_type, connection_ids, record_ids=(), derived=derived
        )
        if tracker.diffed:
            tracker.record_ids = set(rows.values_list("record_id", flat=True))
        return tracker

    def derived_counts(self, applied: Applied) -> dict[int, dict[str, int]]:
        if not self._restores_a_tab:
            return {}
        # Before the restore every record of the batch that the source still knows was
        # unlinked and lost (to this batch; a record linked again since refuses the restore).
        # Now each is linked.
        integration = self.integration
        source_rows = RemoteId.objects.for_tenant(self.tenant).filter(
            connection=integration.source, record_id=OuterRef("record_id")
        )
        put_back = (
            self._changes(BatchChange.Change.REMOVED)
            .filter(connection=integration.target)
            .filter(Exists(source_rows))
            .count()
        )
        return {
            integration.pk: {
                counts.LINKED: put_back,
                counts.UNLINKED: -put_back,
                counts.LOST: -put_back,
            }
        }

    def plan(self) -> Plan:
        result = Plan(self)
        batch, tenant = self.batch, self.tenant
        if batch.is_restored:
            result.counts[REJECTED] = 1
            result.lines = [Planned(Change(Action.SET_ID))]
            result.lines[0].reject(
                DomainError(f"This change was already undone by {batch.restored_by}.")
            )
            return result
        removed = self._changes(BatchChange.Change.REMOVED)
        # Rows the batch added are taken away first, so their ids do not block the put-back.
        still_added = self._still_added()
        id_taken = RemoteId.objects.for_tenant(tenant).filter(
            connection_id=OuterRef("connection_id"),
            record_type=OuterRef("record_type"),
            remote_id=OuterRef("remote_id"),
        )
        slot_taken = RemoteId.objects.for_tenant(tenant).filter(
            record_id=OuterRef("record_id"), connection_id=OuterRef("connection_id")
        )
        # An id or a record slot is blocked when something other than this batch's own
        # additions holds it now.
        blocked = removed.filter(
            Exists(id_taken.exclude(pk__in=still_added.values("pk")))
            | Exists(slot_taken.exclude(pk__in=still_added.values("pk")))
        )
        blocked_ids = list(blocked.values_list("remote_id", flat=True)[:1])
        blocked_count = blocked.count() if blocked_ids else 0
        snapshot_blocked = _snapshot_ids_in_use(
            tenant, batch, batch.details.get("removed_records") or []
        )
        if blocked_count or snapshot_blocked:
            example = blocked_ids[0] if blocked_ids else snapshot_blocked[0]
            line = Planned(Change(Action.SET_ID))
            line.reject(
                RestoreConflict(
                    f"Cannot restore: {blocked_count + len(snapshot_blocked)} of the ids are "
                    f"in use again (e.g. {example}). Nothing was restored."
                )
            )
            result.lines = [line]
            result.counts[REJECTED] = 1
            return result
        result.counts[NEW] = removed.count()
        result.counts[REMOVED] = still_added.count()
        return result

    @property
    def strict(self) -> bool:
        return True

    def write(self, plan: Plan, progress: ProgressCallback) -> Applied:
        batch, tenant = self.batch, self.tenant
        total = plan.counts[NEW] + plan.counts[REMOVED]
        removed = self._changes(BatchChange.Change.REMOVED)
        taken_away = self._still_added().delete()[0]
        progress("Putting the references back", taken_away, total)
        # Records the batch removed (merged duplicates) come back first, with their local ids.
        _put_back_records(tenant, batch.details.get("removed_records") or [])
        select_sql, params = removed.values_list(
            "tenant_id", "record_id", "connection_id", "record_type", "remote_id", "remote_ref"
        ).query.sql_with_params()
        with db_connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_table(RemoteId)} "  # noqa: S608 (table names, not input)
                "(tenant_id, record_id, connection_id, record_type, remote_id, remote_ref) "
                f"SELECT sub.* FROM ({select_sql}) sub",
                params,
            )
            put_back = cursor.rowcount
        progress("Marking the records changed", taken_away + put_back, total)
        now = timezone.now()
        mark_changed(
            tenant,
            BatchChange.objects.for_tenant(tenant).filter(batch=batch).values("record_id"),
            self.actor,
            at=now,
        )
        _delete_records_left_without_ids(tenant, batch.details.get("created_record_ids") or [])
        batch.restored_at, batch.restored_by = now, str(self.actor)
        batch.save(update_fields=["restored_at", "restored_by"])
        single = batch.row_count == 1 and batch.kind == Batch.Kind.DELETE
        record = removed.first().record if single and put_back else None
        write_audit(
            tenant,
            self.actor,
            AuditEntry.Action.RESTORE,
            record=record,
            record_type=batch.record_type,
            integration=self.integration,
            batch=batch,
            before={"count": taken_away} if taken_away else None,
            after={"count": put_back},
            summary=f"Restored: {batch.description}",
            at=now,
        )
        plan.counts[NEW], plan.counts[REMOVED] = put_back, taken_away
        progress("Done", total, total)
        return Applied(plan, batch)


def _snapshot_ids_in_use(tenant, batch: Batch, snapshots: list[dict]) -> list[str]:
    """Ids a merged duplicate would get back that are taken again: its local id, or a remote
    id now held by a record other than the survivor it was merged into."""
    in_use = list(
        Record.objects.for_tenant(tenant)
        .filter(local_id__in=[snapshot["local_id"] for snapshot in snapshots])
        .values_list("local_id", flat=True)
    )
    for snapshot in snapshots:
        for row in snapshot["batch_changes"]:
            if row["batch_id"] != batch.pk or row["change"] != BatchChange.Change.REMOVED:
                continue
            holder = RemoteId.objects.for_tenant(tenant).filter(
                connection_id=row["connection_id"],
                record_type=row["record_type"],
                remote_id=row["remote_id"],
            )
            if holder.exclude(record_id=snapshot["survivor_id"]).exists():
                in_use.append(row["remote_id"])
    return in_use


def _delete_records_left_without_ids(tenant, record_ids: list[int]) -> None:
    """Records a batch created and its restore emptied: they did not exist before it."""
    has_ids = RemoteId.objects.for_tenant(tenant).filter(record_id=OuterRef("pk"))
    for chunk in chunks(record_ids):
        Record.objects.for_tenant(tenant).filter(pk__in=chunk).filter(~Exists(has_ids)).delete()

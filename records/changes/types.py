"""The engine's vocabulary: a change, what plan() decided about it, and what apply() wrote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from common.errors import DomainError
from records.models import Batch


class Outcome(StrEnum):
    """What plan() decided for one change (also the keys of `Plan.counts`)."""

    NEW = "new"
    CHANGED = "changed"
    REMOVED = "removed"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


NEW, CHANGED, REMOVED, UNCHANGED, REJECTED = Outcome
OUTCOMES = tuple(Outcome)
WRITTEN = (NEW, CHANGED, REMOVED)


class Action(StrEnum):
    """What one change intends; each has its module under `kinds/`."""

    LINK = "link"  # give the record the source knows as X the target id Y (or create it)
    EDIT = "edit"  # set a record's source and target id and ref
    UNLINK = "unlink"  # remove a record's target id
    SET_ID = "set_id"  # set (or with None remove) one connection's id of a record
    MERGE = "merge"  # move a target-only duplicate's id onto the record, retire the duplicate


# (phase, done, total): what a job shows while a change set is written.
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Change:
    """One intended operation: a line of an import, a row edited, an API write."""

    action: Action
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


class NewRecord(NamedTuple):
    """A record a LINK creates, known until then by the source id its line gives it."""

    source_id: str


# What a planned change writes to: an existing record's id, or a record to create.
RecordKey = int | NewRecord


class Write(NamedTuple):
    """One connection's id of one record, as a change leaves it (`remote_id` None: removed)."""

    record: RecordKey
    connection_id: int
    remote_id: str | None
    remote_ref: str = ""

    @property
    def value(self) -> tuple[str, str] | None:
        return None if self.remote_id is None else (self.remote_id, self.remote_ref)


@dataclass
class Row:
    """A RemoteId row as the engine reads it."""

    pk: int
    record_id: int
    connection_id: int
    remote_id: str
    remote_ref: str

    @property
    def value(self) -> tuple[str, str]:
        return (self.remote_id, self.remote_ref)


@dataclass
class Planned:
    """What plan() decided for one change."""

    change: Change
    outcome: Outcome | str = ""
    reason: str = ""
    error: DomainError | None = None
    record_key: RecordKey | None = None
    writes: list[Write] = field(default_factory=list)
    before: dict | None = None
    after: dict | None = None
    source_id: str = ""  # trimmed, also for rejected lines (the preview shows them)
    target_id: str = ""
    source_ref: str = ""
    target_ref: str = ""
    # The same change given again (a file pasted into itself): rejected, and left out of the
    # set-wide checks so it does not make its first line ambiguous.
    repeats_line: int | None = None

    @property
    def line(self) -> int:
        return self.change.line

    @property
    def record_id(self) -> int | None:
        """The existing record this change writes, or None for a record it creates."""
        return None if isinstance(self.record_key, NewRecord) else self.record_key

    @property
    def accepted(self) -> bool:
        return self.outcome in WRITTEN

    @property
    def rejected(self) -> bool:
        return self.outcome == REJECTED

    def reject(self, error: DomainError) -> None:
        self.outcome, self.reason, self.error = REJECTED, error.message, error


@dataclass
class Plan:
    change_set: object
    lines: list[Planned] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    current: dict = field(default_factory=dict)  # (record_id, connection_id) -> Row
    # Why the set as a whole cannot be applied (a restore of a batch already undone).
    error: DomainError | None = None

    @classmethod
    def refused(cls, change_set, error: DomainError) -> Plan:
        plan = cls(change_set, error=error)
        plan.counts[REJECTED] = 1
        return plan

    def here(self, record: RecordKey | None, connection_id: int) -> Row | None:
        """The row a record has now for a connection (None for a record to create)."""
        return self.current.get((record, connection_id))

    def of(self, outcome: str) -> list[Planned]:
        return [line for line in self.lines if line.outcome == outcome]

    @property
    def accepted(self) -> list[Planned]:
        return [line for line in self.lines if line.accepted]

    @property
    def errors(self) -> list[DomainError]:
        """Every reason the plan refuses something, the set-wide one first."""
        return ([self.error] if self.error else []) + [
            line.error for line in self.lines if line.rejected and line.error
        ]


@dataclass
class Applied:
    plan: Plan
    batch: Batch | None
    record_ids: list[int] = field(default_factory=list)  # records written (in change order)

    @property
    def counts(self) -> dict[str, int]:
        return self.plan.counts

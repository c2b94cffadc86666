"""The one writer of remote ids: every change is a change set, planned, then applied.

    result = plan(change_set)      # reads only: each change is new, changed, removed,
                                   # unchanged or rejected (with a reason naming the holder)
    applied = apply(change_set)    # one transaction: plans again under locks and writes
                                   # the accepted changes as one restorable Batch

A single add from the References page and a 100,000-line CSV import are the same code path
(`ChangeSet`); only the size differs. Delete-all and restore are set-based change sets (a few
statements for a million rows, `bulk.py`) behind the same `plan()` / `apply()`. No other
module writes RemoteId, Batch or BatchChange rows: the models refuse writes outside `apply()`
(records.models.writing), and tests/test_architecture.py proves no other module opens that door.

Where things are:
    types.py      the vocabulary: Change, Action, Outcome, Planned, Plan, Write, NewRecord
    engine.py     plan(), apply(), tab locks, the abstract ChangeSetBase
    changeset.py  ChangeSet: row-wise changes, planned line by line
    kinds/        one module per Action: cleaning, writes, outcome, snapshots, summary
    rules.py      set-wide rules: repeats, ambiguous ids, stale versions, ids held elsewhere
    messages.py   every sentence the engine says
    storage.py    reading and writing rows (COPY for big sets on PostgreSQL)
    merge.py      a merged duplicate, retired and brought back
    bulk.py       DeleteAll and Restore
    retry.py      RetrySync: records back into the delta feed (no remote id written)
"""

from .bulk import DeleteAll, linked_target_rows
from .changeset import ChangeSet
from .engine import ChangeSetBase, apply, intent, plan
from .messages import describe_edit, named, side_names
from .restore import Restore, RestoreConflict
from .retry import RetrySync
from .storage import known_as
from .types import (
    CHANGED,
    NEW,
    OUTCOMES,
    REJECTED,
    REMOVED,
    UNCHANGED,
    WRITTEN,
    Action,
    Applied,
    Change,
    NewRecord,
    Outcome,
    Plan,
    Planned,
    ProgressCallback,
    Write,
)

__all__ = [
    "CHANGED",
    "NEW",
    "OUTCOMES",
    "REJECTED",
    "REMOVED",
    "UNCHANGED",
    "WRITTEN",
    "Action",
    "Applied",
    "Change",
    "ChangeSet",
    "ChangeSetBase",
    "DeleteAll",
    "NewRecord",
    "Outcome",
    "Plan",
    "Planned",
    "ProgressCallback",
    "Restore",
    "RestoreConflict",
    "RetrySync",
    "Write",
    "apply",
    "intent",
    "known_as",
    "named",
    "describe_edit",
    "linked_target_rows",
    "plan",
    "side_names",
]

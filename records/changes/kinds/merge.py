"""MERGE: move a target-only duplicate's id onto the record, and retire the duplicate."""

from __future__ import annotations

from common.errors import DomainError

from .. import messages
from ..merge import retire_duplicate
from ..storage import record_of
from ..types import NEW, Action, Outcome, Plan, Planned, Write
from .base import ChangeKind


class Merge(ChangeKind):
    action = Action.MERGE

    def build_writes(self, line: Planned, plan: Plan, change_set) -> None:
        change, key = line.change, line.record_key
        target = change_set.integration.target_id
        if not line.rejected:
            self._check(line, plan, change_set)
        line.writes = [
            Write(change.duplicate_id, target, None),
            Write(key, target, line.target_id, line.target_ref),
        ]

    def _check(self, line: Planned, plan: Plan, change_set) -> None:
        change, key = line.change, line.record_key
        integration = change_set.integration
        here_target = plan.here(key, integration.target_id)
        duplicate_row = plan.here(change.duplicate_id, integration.target_id)
        # The duplicate's id as the person saw it: the one moved over, or (keeping the
        # survivor's own target id) the one that goes away with the duplicate.
        duplicate_id = change.remote_id or line.target_id
        keeps_own = here_target is not None and here_target.remote_id == line.target_id
        if here_target is not None and not (keeps_own or change_set.relink):
            here_source = plan.here(key, integration.source_id)
            line.reject(
                messages.already_linked(
                    change_set.side_names,
                    here_source.remote_id if here_source else "",
                    here_target.remote_id,
                    holder=record_of(change_set.tenant, key),
                    to_edit=False,
                )
            )
        elif duplicate_row is None or duplicate_row.remote_id != duplicate_id:
            line.reject(DomainError(messages.SUGGESTION_GONE))

    def outcome(self, line: Planned, plan: Plan, change_set, *, added: bool) -> Outcome:
        return NEW

    def summary(self, line: Planned) -> str:
        note = f" ({line.change.note})" if line.change.note else ""
        return f"Linked {line.after['source_id']} to {line.after['target_id']}{note}"

    def intent(self, line: Planned, plan: Plan) -> str:
        return f"Link to {line.target_id} and retire the duplicate"

    def retire(self, line: Planned, tenant):
        return retire_duplicate(tenant, line.change.duplicate_id, survivor_id=line.record_key)

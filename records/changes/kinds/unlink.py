"""UNLINK: remove a record's target id (delete a reference)."""

from __future__ import annotations

from common.errors import DomainError

from .. import messages
from ..types import REMOVED, Action, Outcome, Plan, Planned, Write
from .base import ChangeKind


class Unlink(ChangeKind):
    action = Action.UNLINK

    def build_writes(self, line: Planned, plan: Plan, change_set) -> None:
        target = change_set.integration.target_id
        line.writes = [Write(line.record_key, target, None)]
        if plan.here(line.record_key, target) is None and not line.rejected:
            line.reject(DomainError(messages.NOT_LINKED))

    def outcome(self, line: Planned, plan: Plan, change_set, *, added: bool) -> Outcome:
        return REMOVED

    def intent(self, line: Planned, plan: Plan) -> str:
        integration = plan.change_set.integration
        source = plan.here(line.record_key, integration.source_id)
        target = plan.here(line.record_key, integration.target_id)
        ids = " → ".join(row.remote_id for row in (source, target) if row)
        return f"Unlink {ids}" if ids else "Unlink"

    def summary(self, line: Planned) -> str:
        return f"Deleted reference {line.before['source_id']} → {line.before['target_id']}"

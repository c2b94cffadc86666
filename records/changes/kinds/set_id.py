"""SET_ID: set (or with None remove) one connection's id of a record (the API, custom keys)."""

from __future__ import annotations

from common.errors import InvalidValue
from records.validation import clean_remote_id, clean_remote_ref

from .. import messages
from ..types import CHANGED, NEW, REMOVED, Action, Outcome, Plan, Planned, Write
from .base import ChangeKind


class SetId(ChangeKind):
    action = Action.SET_ID

    def clean(self, line: Planned, change_set) -> None:
        change = line.change
        line.target_ref = clean_remote_ref(
            change.remote_ref, field="remote_ref", label="Remote ref"
        )
        if change.remote_id is not None:
            line.target_id = clean_remote_id(change.remote_id, field="remote_id", label="Remote id")
        elif line.target_ref:
            raise InvalidValue(messages.REF_WITHOUT_ID, field="remote_ref")

    def connections(self, change) -> set[int]:
        return {change.connection_id}

    def build_writes(self, line: Planned, plan: Plan, change_set) -> None:
        change = line.change
        if change.remote_id is None:
            line.writes = [Write(line.record_key, change.connection_id, None)]
        else:
            line.writes = [
                Write(line.record_key, change.connection_id, line.target_id, line.target_ref)
            ]

    def outcome(self, line: Planned, plan: Plan, change_set, *, added: bool) -> Outcome:
        if line.writes[0].value is None:
            return REMOVED
        return NEW if added else CHANGED

    def snapshots(self, line: Planned, plan: Plan, change_set, hex_ids: dict) -> tuple:
        write = line.writes[0]
        here = plan.here(line.record_key, write.connection_id)
        hex_id = hex_ids[write.connection_id]
        before = (
            {"connection_id": hex_id, "remote_id": here.remote_id, "remote_ref": here.remote_ref}
            if here
            else None
        )
        after = (
            {"connection_id": hex_id, "remote_id": write.remote_id, "remote_ref": write.remote_ref}
            if write.value
            else None
        )
        return before, after

    def summary(self, line: Planned) -> str:
        before, after = line.before, line.after
        if after is None:
            return f"Removed remote id {before['remote_id']}"
        if before is None:
            return f"Set remote id {after['remote_id']}"
        return f"Changed remote id {before['remote_id']} to {after['remote_id']}"

    def intent(self, line: Planned, plan: Plan) -> str:
        change = line.change
        if change.remote_id is None:
            here = plan.here(line.record_key, change.connection_id)
            return f"Remove id {here.remote_id}" if here else "Remove an id"
        return f"Set id {line.target_id}" + (f" ({line.target_ref})" if line.target_ref else "")

    def audit_connection(self, line: Planned, change_set, connections: dict):
        return connections[line.change.connection_id]

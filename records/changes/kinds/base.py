"""What every kind of change decides for itself; the change set does the rest for all."""

from __future__ import annotations

from typing import ClassVar

from records.validation import clean_remote_id, clean_remote_ref

from ..types import CHANGED, NEW, Action, Outcome, Plan, Planned, Write


class ChangeKind:
    """One action (`types.Action`): how its line is cleaned, what it writes, its outcome,
    its before/after snapshot and its summary. Registered in `kinds.KINDS`."""

    action: ClassVar[Action]
    # LINK names its record by the source id: the set looks those up before planning.
    found_by_source: ClassVar[bool] = False

    def clean(self, line: Planned, change_set) -> None:
        """Validate the line's values in place; raise InvalidValue naming the field."""

    def record_key(self, line: Planned, by_source: dict):
        """The record the change writes (LINK: found by its source id, or one to create)."""
        return line.change.record_id

    def connections(self, change) -> set[int]:
        """Connections it writes besides the integration's two sides."""
        return set()

    def build_writes(self, line: Planned, plan: Plan, change_set) -> None:
        """Set `line.writes`; reject the line when the change cannot apply to the record."""
        raise NotImplementedError

    def outcome(self, line: Planned, plan: Plan, change_set, *, added: bool) -> Outcome:
        """The outcome of a line that changes something (`added`: a side gets a first id)."""
        target = change_set.integration.target_id
        return NEW if plan.here(line.record_key, target) is None else CHANGED

    def slot_label(self, line: Planned, change_set) -> tuple[str, str]:
        """How an ambiguity about this line's record is named."""
        return "Record", str(line.record_key)

    def snapshots(self, line: Planned, plan: Plan, change_set, hex_ids: dict) -> tuple:
        """The reference before and after, as the audit trail and the history show it."""
        integration = change_set.integration
        sides = {integration.source_id: "source", integration.target_id: "target"}
        key = line.record_key
        before = {}
        for connection_id, side in sides.items():
            here = plan.here(key, connection_id)
            before[f"{side}_id"] = here.remote_id if here else None
            before[f"{side}_ref"] = here.remote_ref if here else None
        after = dict(before)
        for write in line.writes:
            if write.record == key:
                side = sides[write.connection_id]
                after[f"{side}_id"] = write.remote_id
                after[f"{side}_ref"] = write.remote_ref if write.value else None
        return (None if line.record_id is None else before), after

    def summary(self, line: Planned) -> str:
        raise NotImplementedError

    def intent(self, line: Planned, plan: Plan) -> str:
        """What the change does, for a preview line ("Link 5001 → INV-1")."""
        return f"Link {line.source_id} → {line.target_id}"

    def audit_connection(self, line: Planned, change_set, connections: dict):
        """The connection its audit entry is about: the integration's target by default."""
        return change_set.target

    def retire(self, line: Planned, tenant):
        """A record this change deletes once written (a merged duplicate), as its snapshot."""
        return


def clean_reference(line: Planned, change_set, *, target_required: bool) -> None:
    """LINK and EDIT: both ids (the target's may be empty for a link) and both refs."""
    change = line.change
    source, target = change_set.side_names
    line.source_id = clean_remote_id(change.source_id, field="source_id", label=f"{source} id")
    if change.target_id.strip() or target_required:
        line.target_id = clean_remote_id(change.target_id, field="target_id", label=f"{target} id")
    line.source_ref = clean_remote_ref(change.source_ref, field="source_ref", label=f"{source} ref")
    line.target_ref = clean_remote_ref(change.target_ref, field="target_ref", label=f"{target} ref")


def both_sides(line: Planned, change_set) -> list:
    """The writes of a reference: the source's id and ref, and the target's."""
    integration = change_set.integration
    return [
        Write(line.record_key, integration.source_id, line.source_id, line.source_ref),
        Write(line.record_key, integration.target_id, line.target_id, line.target_ref),
    ]

"""EDIT: set a record's source and target id and ref (an inline edit on the References page)."""

from __future__ import annotations

from .. import messages
from ..types import Action, Plan, Planned
from .base import ChangeKind, both_sides, clean_reference


class Edit(ChangeKind):
    action = Action.EDIT

    def clean(self, line: Planned, change_set) -> None:
        clean_reference(line, change_set, target_required=True)

    def build_writes(self, line: Planned, plan: Plan, change_set) -> None:
        if line.source_id:  # else rejected when cleaned: nothing to check
            line.writes = both_sides(line, change_set)

    def summary(self, line: Planned) -> str:
        return messages.describe_edit(line.before or {}, line.after)

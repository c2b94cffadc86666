"""LINK: give the record the source knows as X the target id Y, or create the record."""

from __future__ import annotations

from .. import messages
from ..storage import record_of
from ..types import UNCHANGED, Action, NewRecord, Plan, Planned
from .base import ChangeKind, both_sides, clean_reference


class Link(ChangeKind):
    action = Action.LINK
    found_by_source = True

    def clean(self, line: Planned, change_set) -> None:
        clean_reference(line, change_set, target_required=False)

    def record_key(self, line: Planned, by_source: dict):
        return by_source.get(line.source_id, NewRecord(line.source_id))

    def build_writes(self, line: Planned, plan: Plan, change_set) -> None:
        if not line.source_id:
            return  # rejected when cleaned: nothing to take part in the checks
        integration = change_set.integration
        here_source = plan.here(line.record_key, integration.source_id)
        here_target = plan.here(line.record_key, integration.target_id)
        # An empty ref keeps the current one; so does an unchanged target id.
        if not line.source_ref and here_source is not None:
            line.source_ref = here_source.remote_ref
        if not line.target_ref and here_target and here_target.remote_id == line.target_id:
            line.target_ref = here_target.remote_ref
        if not line.target_id:
            _not_linked(line, change_set, here_source, here_target)
            return
        if (
            not change_set.relink
            and here_target is not None
            and here_target.remote_id != line.target_id
            and not line.rejected
        ):
            line.reject(
                messages.already_linked(
                    change_set.side_names,
                    line.source_id,
                    here_target.remote_id,
                    holder=record_of(change_set.tenant, line.record_key),
                    to_edit=True,
                )
            )
        line.writes = both_sides(line, change_set)

    def slot_label(self, line: Planned, change_set) -> tuple[str, str]:
        return f"{change_set.side_names[0]} id", line.source_id

    def summary(self, line: Planned) -> str:
        if line.before is None or not line.before.get("target_id"):
            return f"Linked {line.source_id} to {line.target_id}"
        return messages.describe_edit(line.before, line.after)


def _not_linked(line: Planned, change_set, here_source, here_target) -> None:
    """ "Not linked" (what export writes): fine where it is not linked here either."""
    if line.rejected:
        return
    if here_source is not None and here_target is None:
        line.outcome = UNCHANGED
        return
    linked_to = here_target.remote_id if here_target else None
    line.reject(messages.target_required(change_set.side_names, line.source_id, linked_to))

"""The rules a change is checked against in the context of its whole set (and the database).

- the same change twice keeps the first line;
- an id given two meanings within the set rejects every line that uses it;
- a change opened on an older version of its record is refused ("changed by X at T");
- an id another record holds is refused, naming that record's link, unless a change of the
  same set moves it away (a swap).
"""

from __future__ import annotations

from collections import defaultdict

from common.errors import DomainError, InvalidValue
from integrations.models import Connection
from records.models import Record
from records.versioning import stale_reference_edit

from . import messages, storage
from .engine import integration_sides
from .kinds import kind_of
from .types import Plan, Planned, Row


def reject_repeats(lines: list[Planned]) -> None:
    """The same change twice keeps the first line (a file pasted into itself)."""
    first: dict = {}
    for line in lines:
        if line.rejected or not line.writes:
            continue
        signature = (line.change.action, line.record_key, tuple(line.writes))
        if signature in first:
            line.repeats_line = first[signature].line
            line.reject(messages.repeated_line(line.repeats_line))
        else:
            first[signature] = line


def reject_ambiguous(change_set, lines: list[Planned]) -> None:
    """An id given two meanings within the set rejects every line that uses it.

    Lines rejected for another reason take part too: a file that says "S1 -> T1" on one
    line and "S2 -> T1" on another is ambiguous about T1 whatever else is wrong with them.
    """
    live = [line for line in lines if line.writes and line.repeats_line is None]
    by_slot: dict = defaultdict(list)  # (record, connection) -> lines: one id per slot
    by_id: dict = defaultdict(list)  # (connection, id) -> lines: one record per id
    for line in live:
        for write in line.writes:
            if write.remote_id:
                by_slot[(write.record, write.connection_id)].append((line, write.remote_id))
                by_id[(write.connection_id, write.remote_id)].append((line, write.record))
    reasons: dict[int, str] = {}
    for uses in by_slot.values():
        if len({remote_id for _, remote_id in uses}) > 1:
            first = uses[0][0]
            label, value = kind_of(first.change.action).slot_label(first, change_set)
            _mark(change_set, reasons, [line for line, _ in uses], label, value)
    for (connection_id, remote_id), uses in by_id.items():
        if len({record for _, record in uses}) > 1:
            label = id_label(change_set, connection_id)
            _mark(change_set, reasons, [line for line, _ in uses], label, remote_id)
    for line in live:
        if id(line) in reasons:
            line.reject(InvalidValue(reasons[id(line)]))


def _mark(change_set, reasons: dict, lines: list[Planned], label: str, value: str) -> None:
    numbers = [line.line for line in lines]
    message = messages.ambiguous(label, value, numbers, change_set.ambiguous_advice)
    for line in lines:
        reasons.setdefault(id(line), message)


def check_versions(change_set, lines: list[Planned]) -> None:
    """A change carrying the version it was opened on is refused if the record moved on."""
    versioned = [line for line in lines if line.change.version is not None and not line.rejected]
    if not versioned:
        return
    records = Record.objects.for_tenant(change_set.tenant).defer("data")
    current = records.in_bulk({line.record_key for line in versioned})
    for line in versioned:
        record = current.get(line.record_key)
        if record is None:
            line.reject(DomainError(messages.RECORD_GONE, code="gone"))
        elif record.version != line.change.version:
            line.reject(stale_reference_edit(change_set.integration, record))


def reject_taken(change_set, plan: Plan, rows) -> None:
    """An id another record holds is refused, unless a line of this set moves it away.

    Rejections can undo such a move, so repeat until nothing changes.
    """
    holders = _holders(plan, rows)
    while True:
        moving = _moving(plan)
        rejected = 0
        for line in plan.accepted:
            holder = _blocking_holder(line, holders, moving)
            if holder is not None:
                line.reject(taken_error(change_set, holder))
                rejected += 1
        if not rejected:
            return


def _holders(plan: Plan, rows) -> dict[tuple[int, str], Row]:
    """The rows holding now any id an accepted line writes, by (connection, id)."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for line in plan.accepted:
        for write in line.writes:
            if write.value is not None:
                wanted[write.connection_id].add(write.remote_id)
    holders = {}
    for connection_id, ids in wanted.items():
        for row in storage.rows_by(rows.filter(connection_id=connection_id), "remote_id", ids):
            holders[(connection_id, row.remote_id)] = row
    return holders


def _moving(plan: Plan) -> set:
    """The (record, connection) slots whose id an accepted line changes or removes."""
    moving = set()
    for line in plan.accepted:
        for write in line.writes:
            here = plan.here(write.record, write.connection_id)
            if here is not None and write.remote_id != here.remote_id:
                moving.add((write.record, write.connection_id))
    return moving


def _blocking_holder(line: Planned, holders: dict, moving: set) -> Row | None:
    for write in line.writes:
        holder = holders.get((write.connection_id, write.remote_id)) if write.value else None
        if holder is None or holder.record_id == write.record:
            continue
        if (holder.record_id, write.connection_id) not in moving:
            return holder
    return None


def id_label(change_set, connection_id) -> str:
    """How an id of `connection_id` is named in a message ("Shopify id")."""
    integration = change_set.integration
    if integration is not None and connection_id == integration.source_id:
        return f"{change_set.side_names[0]} id"
    if integration is not None and connection_id == integration.target_id:
        return f"{change_set.side_names[1]} id"
    return "Remote id"


def taken_error(change_set, holder: Row):
    """The refusal of an id `holder` has: named by that record's link where it has one."""
    tenant, record_type = change_set.tenant, change_set.record_type
    integration = change_set.integration
    record = storage.record_of(tenant, holder.record_id)
    if holder.connection_id not in integration_sides(integration):
        connection = Connection.objects.for_tenant(tenant).get(pk=holder.connection_id)
        return messages.id_of_another_record(
            holder.remote_id, record_type, record, connection.name,
            known_as=storage.known_as(tenant, holder.record_id, besides=holder.connection_id),
            field="remote_id", label="Remote id",
        )  # fmt: skip
    if holder.connection_id == integration.target_id:
        linked_from = storage.other_id(tenant, holder.record_id, integration.source_id)
        others = (
            ""
            if linked_from
            else storage.known_as(tenant, holder.record_id, besides=holder.connection_id)
        )
        return messages.target_taken(
            integration, holder.remote_id, record_type, record, linked_from, others
        )
    linked_to = storage.other_id(tenant, holder.record_id, integration.target_id)
    return messages.source_taken(integration, holder.remote_id, record_type, record, linked_to)

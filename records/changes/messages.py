"""Every sentence the engine says about a refused or written change, in one place.

The names are the connections' ("Shopify id 5001"), as the forms label the fields; a holder
is named by the ids people know, not by a local id, where it has them.
"""

from __future__ import annotations

from common.errors import DomainError, InvalidValue
from records.errors import Conflict

RACE_LOST = (
    "Another change to these references happened at the same time; nothing was written. "
    "Check again and retry."
)
NOT_LINKED = "This record is not linked to a target; there is nothing to delete."
SUGGESTION_GONE = "This suggestion no longer applies: the records changed."
RECORD_GONE = "This record no longer exists."
REF_WITHOUT_ID = "A remote ref needs a remote id."


def side_names(integration) -> tuple[str, str]:
    """What the forms call the two sides: the connections' names ("Shopify", "Fortnox"), so
    an error says "Shopify id 5001 ..." like the field it is about."""
    if integration is None:
        return "Source", "Target"
    return integration.source.name, integration.target.name


def named(remote_id: str, remote_ref: str = "") -> str:
    """A record in a sentence by the id people know: "INV-7 (#1002)", never its local id."""
    return f"{remote_id} ({remote_ref})" if remote_ref else remote_id


def repeated_line(first_line: int) -> InvalidValue:
    return InvalidValue(f"Duplicate of line {first_line}.")


def ambiguous(label: str, value: str, line_numbers: list[int], advice: str) -> str:
    numbers = sorted(set(line_numbers))
    shown = ", ".join(str(number) for number in numbers[:5]) + ("..." if len(numbers) > 5 else "")
    return f"{label} {value} is on more than one line ({shown}) with different ids; {advice}"


def already_linked(sides, source_id: str, target_id: str, *, holder, to_edit: bool) -> Conflict:
    """A source id linked to another target: an add refuses (edit it), a merge gives up."""
    source, target = sides
    if to_edit:
        message = (
            f"{source} id {source_id} is already linked to {target} id {target_id}. "
            "Edit that reference instead."
        )
    else:
        message = (
            f"{source} id {source_id} is already linked to {target} id {target_id}; "
            "nothing was merged."
        )
    return Conflict(message, field="source_id" if to_edit else "target_id", holder=holder)


def target_required(sides, source_id: str, linked_to: str | None) -> InvalidValue:
    if linked_to is None:
        return InvalidValue(f"{sides[1]} id is required.", field="target_id")
    return InvalidValue(
        f"{sides[1]} id is empty but {source_id} is linked to {linked_to}; delete the "
        "reference on the References page to unlink it.",
        field="target_id",
    )


def id_of_another_record(
    remote_id: str,
    record_type: str,
    holder,
    connection_name: str,
    *,
    known_as: str,
    field: str,
    label="Id",
) -> Conflict:
    """An id another record holds in a connection outside the integration (or through the
    API): the one sentence records.services uses too. The holder is named by its other ids
    (`known_as`, storage.known_as), its local id only when it has none; and it says how to
    resolve it."""
    named = f"known as {known_as}" if known_as else f"with no other id, local id {holder.local_id}"
    return Conflict(
        f"{label} {remote_id} already belongs to another {record_type} in {connection_name} "
        f"({named}). To give it to this {record_type}, first remove it from that one (through "
        "the API: its remoteId set to null, at heldBy.localId), then try again; or use another "
        "id.",
        field=field,
        holder=holder,
    )


def target_taken(
    integration, remote_id: str, record_type: str, holder, linked_from, known_as: str = ""
) -> Conflict:
    if linked_from:
        message = (
            f"{integration.target.name} id {remote_id} is already linked to "
            f"{integration.source.name} id {linked_from}."
        )
    else:
        message = (
            f"{integration.target.name} id {remote_id} already belongs to another "
            f"{record_type}"
            + (f" (known as {known_as})" if known_as else "")
            + f", which {integration.source} does not know; see Suggested links."
        )
    return Conflict(message, field="target_id", holder=holder)


def source_taken(integration, remote_id: str, record_type: str, holder, linked_to) -> Conflict:
    linked = (
        f" (linked to {integration.target.name} id {linked_to})."
        if linked_to
        else (" (not linked).")
    )
    return Conflict(
        f"{integration.source.name} id {remote_id} is already used by another {record_type}"
        + linked,
        field="source_id",
        holder=holder,
    )


def already_undone(restored_by: str) -> DomainError:
    return DomainError(f"This change was already undone by {restored_by}.")


def ids_in_use_again(count: int, example: str) -> str:
    return (
        f"Cannot restore: {count} of the ids are in use again (e.g. {example}). "
        "Nothing was restored."
    )


def describe_edit(before: dict, after: dict) -> str:
    """ "Changed source id A → B, target ref - → R": what an edit of a reference changed."""
    parts = []
    for side in ("source", "target"):
        for name in ("id", "ref"):
            key = f"{side}_{name}"
            if (before.get(key) or None) != (after.get(key) or None):
                parts.append(f"{side} {name} {before.get(key) or '-'} → {after.get(key) or '-'}")
    return "Changed " + ", ".join(parts) if parts else "No change"

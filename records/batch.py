"""Batch writes and lookups for connectors: up to 500 records in one request.

A sync of 100,000 orders is 200 requests instead of 100,000. Each item means what the single
call means (an item without localId is POST /{recordType}, one with it is PUT .../{localId},
with its own If-Match) and fails with the same error; the items that pass are written together
in one transaction, their remote ids as one change set of the engine (one Batch, one lock, one
plan). An item's error never stops the others.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db import connection as db_connection

from common.errors import DomainError, InvalidValue, NotFound
from common.sets import one_of

from . import changes, locks, refusals
from .audit import (
    Actor,
    audit_entry,
    mark_changed,
    save_entries,
    source_connection_id,
    update_and_mark_changed,
)
from .changes import messages
from .custom_data import (
    CustomDataInput,
    check_connection_may_write,
    replace_cleaned,
    upsert_cleaned,
)
from .errors import Conflict
from .models import AuditEntry, Batch, CustomData, Record, RemoteId
from .queries import records_with_ids_and_custom_data
from .services import UNCHANGED, conflict_for_remote_id, field_update_entry, source_code_refusal
from .validation import clean_record_type, clean_source_code
from .versioning import version_mismatch
from .wire import clean_own_remote_id, clean_record_data, parse_custom_data_entries, parse_if_match

MAX_ITEMS = 500


@dataclass
class BatchItem:
    """One item as the API received it (`local_id` None: a create)."""

    local_id: str | None = None
    if_match: str | None = None
    remote_id: str | None = None
    remote_ref: str | None = None
    data: dict | None = None
    custom_data: dict = field(default_factory=dict)
    source_code: object = UNCHANGED
    # A replace must send these (as PUT does); the wire names of those it did not send.
    missing: list[str] = field(default_factory=list)


@dataclass
class Cleaned:
    local_id: str | None
    if_version: int | None
    remote_id: str | None
    remote_ref: str
    data: dict
    entries: list[CustomDataInput]
    source_code: object

    @property
    def creates(self) -> bool:
        return self.local_id is None


@dataclass
class ItemResult:
    status: int = 0
    record_id: int | None = None
    kept: list[str] = field(default_factory=list)
    error: DomainError | None = None

    def fail(self, error: DomainError) -> None:
        self.error, self.status = error, error.status


def write_batch(tenant, record_type: str, connection, actor: Actor, items: list[BatchItem]):
    """Create or replace each item's record; a list of ItemResult in the items' order."""
    record_type = clean_record_type(record_type)
    results = [ItemResult() for _ in items]
    cleaned = {}
    for index, item in enumerate(items):
        try:
            cleaned[index] = _clean(tenant, connection, item)
        except DomainError as error:
            results[index].fail(error)
    _refuse_repeats(cleaned, results)
    with locks.person_waiting(tenant, record_type):
        records = _lock_records(tenant, record_type, connection, _live(cleaned, results), results)
        live = _live(cleaned, results)
        held, own = _connection_ids(tenant, connection, record_type, live, records)
        refused = _refuse_taken(tenant, connection, record_type, live, records, results, held)
        live = _live(cleaned, results)
        records |= _create_records(tenant, record_type, connection, actor, live)
        written = _write_ids(tenant, record_type, connection, actor, live, records, own)
        _write_fields(tenant, connection, actor, live, records, results, written)
        for index, item in live.items():
            results[index].status = 201 if item.creates else 200
            results[index].record_id = records[index].pk
    # After the batch's transaction: the items refused because another record holds their id.
    refusals.keep(tenant, connection, record_type, actor, refused)
    return results


def _live(cleaned: dict, results: list[ItemResult]) -> dict[int, Cleaned]:
    return {index: item for index, item in cleaned.items() if results[index].error is None}


REQUIRED_TO_REPLACE = {"remoteId": "remote_id", "data": "data", "customData": "custom_data"}


def _clean(tenant, connection, item: BatchItem) -> Cleaned:
    creates = item.local_id is None
    if item.missing:
        name = item.missing[0]
        raise InvalidValue(
            f"{name} is required to replace a record (send null or {{}} to empty it).",
            field=REQUIRED_TO_REPLACE[name],
            code="required",
        )
    remote_id, remote_ref = clean_own_remote_id(item.remote_id, item.remote_ref)
    source_code = item.source_code
    if creates:
        source_code = clean_source_code(None if source_code is UNCHANGED else source_code)
    elif source_code is not UNCHANGED:
        source_code = clean_source_code(source_code)
    entries = parse_custom_data_entries(tenant, item.custom_data or {})
    check_connection_may_write(entries, connection)
    return Cleaned(
        local_id=item.local_id,
        if_version=None if creates else parse_if_match(item.if_match),
        remote_id=remote_id,
        remote_ref=remote_ref,
        data=clean_record_data(item.data),
        entries=entries,
        source_code=source_code,
    )


def _refuse_repeats(cleaned: dict[int, Cleaned], results: list[ItemResult]) -> None:
    """A remoteId or localId in two items is refused in each: which one would win?"""
    for name, field_name, value_of in (
        ("remoteId", "remote_id", lambda item: item.remote_id),
        ("localId", "local_id", lambda item: item.local_id),
    ):
        uses = Counter(value_of(item) for item in cleaned.values() if value_of(item))
        for index, item in cleaned.items():
            value = value_of(item)
            if value and uses[value] > 1:
                where = [str(i) for i, other in cleaned.items() if value_of(other) == value]
                results[index].fail(
                    InvalidValue(
                        f"{name} {value} is in more than one item ({', '.join(where[:5])}); "
                        "send each once.",
                        field=field_name,
                    )
                )


def _lock_records(tenant, record_type, connection, live, results) -> dict[int, Record]:
    """The records the replaces name, locked; 404 for one that does not exist, 412 for one
    not at the item's If-Match version, 403 for a source code only its creator may set."""
    wanted = {item.local_id: index for index, item in live.items() if not item.creates}
    found = {}
    if wanted:
        # FOR NO KEY UPDATE: the lock an UPDATE of the rows takes anyway. Writers of the same
        # records still wait for each other; foreign-key checks of rows that point at them
        # (KEY SHARE) do not wait.
        rows = Record.objects.for_tenant(tenant).filter(
            local_id__in=one_of(wanted), record_type=record_type
        )
        found = {
            record.local_id: record for record in rows.select_for_update(no_key=True).order_by("pk")
        }
    for record in found.values():
        record.tenant = tenant  # known: not fetched again per record by the audit entries
    records = {}
    for local_id, index in wanted.items():
        record, item = found.get(local_id), live[index]
        if record is None:
            results[index].fail(NotFound("No such record on this tenant."))
        elif item.if_version is not None and record.version != item.if_version:
            results[index].fail(version_mismatch(record.version, item.if_version))
        elif _sets_code(record, item) and (refusal := source_code_refusal(record, connection)):
            results[index].fail(refusal)
        else:
            records[index] = record
    return records


def _sets_code(record: Record, item: Cleaned) -> bool:
    return item.source_code is not UNCHANGED and item.source_code != record.source_code


def _connection_ids(tenant, connection, record_type, live, records):
    """`connection`'s ids of this type that the batch asks about, in one query: those the items
    send ({remote id: record pk}: who holds them) and those the replaced records have now
    ({record pk: (remote id, ref)})."""
    rows = RemoteId.objects.for_tenant(tenant).filter(
        connection=connection, record_type=record_type
    )
    asked = {item.remote_id for item in live.values() if item.remote_id is not None}
    pks = {record.pk for record in records.values()}
    columns = ("remote_id", "record_id", "remote_ref")
    parts = [
        rows.filter(**{f"{name}__in": one_of(values)}).order_by().values_list(*columns)
        for name, values in (("remote_id", asked), ("record_id", pks))
        if values
    ]
    found = parts[0].union(*parts[1:], all=True) if parts else []
    held, own = {}, {}
    for remote_id, record_id, ref in found:
        if remote_id in asked:
            held[remote_id] = record_id
        if record_id in pks:
            own[record_id] = (remote_id, ref)
    return held, own


def _refuse_taken(tenant, connection, record_type, live, records, results, held) -> list:
    """409 for an item whose remoteId another record holds (`held`: from _connection_ids); the
    holders of the refused ones (named in the error) read once more. The refusals, to keep."""
    rows = RemoteId.objects.for_tenant(tenant).filter(
        connection=connection, record_type=record_type
    )
    refused = {
        index: item.remote_id
        for index, item in live.items()
        if item.remote_id in held
        and (index not in records or held[item.remote_id] != records[index].pk)
    }
    named = rows.select_related("record", "connection").filter(remote_id__in=refused.values())
    holders = {row.remote_id: row for row in named} if refused else {}
    kept = []
    for index, remote_id in refused.items():
        error = conflict_for_remote_id(holders[remote_id], field="remote_id", label="Remote id")
        results[index].fail(error)
        item = live[index]
        kept.append(refusals.refusal_of(error, remote_id, item.remote_ref, records.get(index)))
    return kept


def _create_records(tenant, record_type, connection, actor, live) -> dict[int, Record]:
    creates = {index: item for index, item in live.items() if item.creates}
    if not creates:
        return {}
    by, source = str(actor), source_connection_id(tenant, actor)
    created = Record.objects.bulk_create(
        Record(
            tenant=tenant,
            record_type=record_type,
            data=item.data,
            last_modified_by=by,
            record_source=by,
            source_connection_id=source,
            source_code=item.source_code,
        )
        for item in creates.values()
    )
    save_entries(
        [
            audit_entry(
                tenant,
                actor,
                AuditEntry.Action.RECORD_CREATE,
                record=record,
                connection=connection,
                after={
                    "data": record.data,
                    **({"source_code": record.source_code} if record.source_code else {}),
                },
                summary=f"Created {record_type} {record.local_id}",
            )
            for record in created
        ]
    )
    return dict(zip(creates, created, strict=True))


def _write_ids(tenant, record_type, connection, actor, live, records, own) -> set[int]:
    """Every item's own remote id that differs from the record's, as one change set; the
    records whose id it wrote. A sync mostly sends the ids as they are: those lines would be
    planned "unchanged" anyway, and leaving them out spares the engine's plan and its counts
    (a fifth of a 500-item replace). `own`: {record pk: (remote id, ref)} of the connection's
    ids of the records (_connection_ids); a record created here has none."""
    lines = [
        changes.Change(
            changes.Action.SET_ID,
            line=index,
            record_id=records[index].pk,
            connection_id=connection.pk,
            remote_id=item.remote_id,
            remote_ref=item.remote_ref or "",
        )
        for index, item in live.items()
        if _id_of(item) != own.get(records[index].pk)
    ]
    if not lines:
        return set()
    applied = changes.apply(
        changes.ChangeSet(
            tenant=tenant,
            record_type=record_type,
            actor=actor,
            kind=Batch.Kind.API,
            changes=lines,
            audit_action=AuditEntry.Action.REMOTE_ID_SET,
            audit_each=False,
            description=f"API batch: {{written}} {record_type} ids of {connection.name}",
            new_record_ids=frozenset(r.pk for i, r in records.items() if live[i].creates),
        )
    )
    if applied.counts[changes.REJECTED]:
        # Checked above under the same locks: only a concurrent writer gets here. Nothing of
        # the batch is written (the transaction rolls back); the client sends it again.
        raise Conflict(messages.RACE_LOST)
    return set(applied.record_ids)


def _id_of(item: Cleaned) -> tuple[str, str] | None:
    """The id an item asks for, as _connection_ids reads one (None: no id)."""
    return None if item.remote_id is None else (item.remote_id, item.remote_ref or "")


def _write_fields(tenant, connection, actor, live, records, results, written) -> None:
    """Data, source code and custom data of each item; the records that changed are marked
    changed (but those whose id the change set wrote: it marked them already)."""
    changed = set()
    updates = []
    with_custom_data = _with_custom_data([records[index] for index in live])
    for index, item in live.items():
        record = records[index]
        if item.creates:
            if item.entries:
                upsert_cleaned(record, item.entries, actor)
            continue
        custom_changed = False
        if item.entries or record.pk in with_custom_data:
            entries_kept, custom_changed = replace_cleaned(record, item.entries, actor, connection)
            results[index].kept = [entry.full_key for entry in entries_kept]
        fields = _replaced_fields(record, item)
        if fields:
            updates.append((record, fields))
        if fields or custom_changed:
            changed.add(record.pk)
    _save_replaced(tenant, connection, actor, updates, changed - written)


def _with_custom_data(records: list[Record]) -> set[int]:
    """The records that have custom data now: only they (and those sent some) need the
    per-record replace; for the rest there is nothing to keep or delete."""
    if not records:
        return set()
    tenant = records[0].tenant
    rows = CustomData.objects.for_tenant(tenant).filter(
        record_id__in=one_of([r.pk for r in records])
    )
    return set(rows.values_list("record_id", flat=True).distinct())


def _replaced_fields(record: Record, item: Cleaned) -> dict:
    fields = {}
    if record.data != item.data:
        fields["data"] = item.data
    if _sets_code(record, item):
        fields["source_code"] = item.source_code
    return fields


REPLACED_COLUMNS = {"data": "jsonb", "source_code": "text"}


def _save_replaced(tenant, connection, actor, updates: list[tuple[Record, dict]], to_mark) -> None:
    """The replaced fields of all records, the audit entries a PUT writes, and the records of
    `to_mark` marked changed. On PostgreSQL one UPDATE writes the fields and marks the records
    (each row written once, not twice: bench/README.md); elsewhere one UPDATE per record and
    field, then mark_changed."""
    entries = [
        field_update_entry(record, name, value, connection, actor)
        for record, fields in updates
        for name, value in fields.items()
    ]
    if db_connection.vendor == "postgresql":
        written = {record.pk: fields for record, fields in updates}
        rows = [
            {"id": pk, **_set(written.get(pk, {})), "stamp": pk in to_mark}
            for pk in sorted(written.keys() | set(to_mark))
        ]
        update_and_mark_changed(tenant, rows, REPLACED_COLUMNS, actor)
    else:
        for record, fields in updates:
            Record.objects.for_tenant(tenant).filter(pk=record.pk).update(**fields)
        mark_changed(tenant, sorted(to_mark), actor)
    save_entries(entries)


def _set(fields: dict) -> dict:
    """A row of update_and_mark_changed: which columns it sets, and their values."""
    out = {}
    for name in REPLACED_COLUMNS:
        out[f"set_{name}"] = name in fields
        out[name] = fields.get(name)
    return out


def lookup(tenant, connection, record_type: str, remote_ids: list[str]) -> dict[str, Record]:
    """The records this connection knows by `remote_ids`, by remote id: two index probes
    (the ids by the unique index of the connection's ids, then the records by key)."""
    holders = dict(
        RemoteId.objects.for_tenant(tenant)
        .filter(connection=connection, record_type=record_type, remote_id__in=set(remote_ids))
        .values_list("record_id", "remote_id")
    )
    records = records_with_ids_and_custom_data(tenant).filter(pk__in=holders)
    return {holders[record.pk]: record for record in records}

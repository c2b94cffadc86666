"""Reconciliation: compare refdesk's ids of one side of an integration with that system's own
export, and repair what the export justifies, and nothing else.

    upload = start(integration, "order", "target", uploaded_file, user)   # reads the file
    compare(upload)                                                       # the report
    change_set = fix_change_set(upload, actor, choice)                    # plan/apply

The export is a CSV with a header (any names). Every column is kept: the id is the first
column whose name contains "id"; the key the one named like the integration's match key
(orderNumber, sku, email); the ref the first other one whose name contains "ref", "number" or
"name". The person may choose the ref and key columns and compare again. A line's key (the key
column, else its ref) is compared with the match key of the records of the integration's other
side.

Each line of the file gets one class:
- ok: refdesk holds the id and the export agrees;
- reused: refdesk holds the id, but the line's key belongs to an unlinked record here (a
  remote reset gave the id to another document); fixed by moving the id to that record when
  exactly one matches;
- ref differs ("ref changed"): refdesk holds the id, the export shows another ref, and no
  other record has that key; listed, left as is;
- matched / unknown: new there; its key is (or is not) the key of exactly one unlinked record;
- twice: the id is on more than one line.
And each id refdesk holds on the file's side that the file lacks, one of:
- stale ("gone remotely"): linked in this integration;
- gone_shared: linked in another integration that shares the connection; removed only when
  the person ticks it;
- not_linked: known to the connection only; never touched.

Gone ids are removed by default only when the file is plausibly complete: it shows at least
COMPLETE_PERCENT of this integration's links on its side (a wiped system that reuses ids still
shows most of them, as reused); else nothing is removed unless the person ticks it.

The upload request reads the file once, a line at a time, into ReconcileLine rows (COPY on
PostgreSQL): its text is never kept. The comparison classifies those rows in SQL (a job when
large); the report is all that is kept, for a day (`manage.py purge_uploads`).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import CharField, Count, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.errors import DomainError
from integrations.models import REMOTE_REF, Integration
from records import changes
from records.audit import Actor
from records.models import AuditEntry, Batch, Record, RemoteId

from .findings.keys import key_expression, target_only_rows
from .imports import unescape_cell
from .models import ReconcileLine, ReconcileUpload
from .services import check_entity_type, reference_change_set, unlinked_source_rows
from .uploads import ImportFileError, copy_rows, opened_text, sniff_delimiter

Kind = ReconcileLine.Kind
CHUNK = 2000
ID_WORDS = ("id",)
REF_WORDS = ("ref", "number", "name")
MAX_COLUMNS = 30
# A file showing fewer of this integration's links on its side is taken as partial: its gone
# ids are not removed unless the person ticks them.
COMPLETE_PERCENT = 90
# A fix unlinking more than this share of the tab's links asks for the entity typed, as
# delete-all does.
CONFIRM_PERCENT = 5
# Classes in the order the report shows them: the file's lines, then the ids it lacks.
FILE_CLASSES = (Kind.OK, Kind.REUSED, Kind.REF_DIFFERS, Kind.MATCHED, Kind.UNKNOWN, Kind.TWICE)
GONE_CLASSES = (Kind.STALE, Kind.GONE_SHARED, Kind.NOT_LINKED)
CLASSES = FILE_CLASSES + GONE_CLASSES


def side_connection(integration, side: str):
    return integration.source if side == ReconcileUpload.Side.SOURCE else integration.target


def other_connection(integration, side: str):
    return integration.target if side == ReconcileUpload.Side.SOURCE else integration.source


# --- reading the export -----------------------------------------------------------------------


def _column(names: list[str], words, skip=()) -> int | None:
    for position, name in enumerate(names):
        if position not in skip and any(word in name.lower() for word in words):
            return position
    return None


def _squashed(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def detect_columns(names: list[str], match_key: str) -> tuple[int | None, int | None, int | None]:
    """(id, ref, key) columns of a header: the key is named like the match key field."""
    id_column = _column(names, ID_WORDS)
    key_column = None
    if match_key != REMOTE_REF:
        wanted = _squashed(match_key)
        key_column = next(
            (
                position
                for position, name in enumerate(names)
                if position != id_column and wanted and wanted in _squashed(name)
            ),
            None,
        )
    ref_column = _column(names, REF_WORDS, skip={id_column, key_column})
    return id_column, ref_column, key_column


def read_lines(lines: Iterator[str]) -> tuple[list[str], csv.reader, int]:
    """The header's names, the reader of the lines after it, and the lines before the header;
    ImportFileError for a bad header at once."""
    delimiter, body, offset = sniff_delimiter(lines)
    reader = csv.reader(body, delimiter=delimiter)
    try:
        header = next(reader, None) or []
    except csv.Error:
        header = []
    return [name.strip().strip("\ufeff")[:80] for name in header][:MAX_COLUMNS], reader, offset


def _cell_lines(reader, id_column: int, offset: int, seen: dict):
    """(line, id, cells) of each line with an id, tracking the numeric range of the ids."""
    previous_end = reader.line_num
    try:
        for values in reader:
            line = previous_end + 1 + offset
            previous_end = reader.line_num
            if len(values) <= id_column or not values[id_column].strip():
                continue
            cells = [unescape_cell(value.strip())[:255] for value in values[:MAX_COLUMNS]]
            remote_id = cells[id_column]
            if remote_id.isdigit() and seen["numeric"]:
                number = int(remote_id)
                seen["low"] = min(seen.get("low", number), number)
                seen["high"] = max(seen.get("high", number), number)
            else:
                seen["numeric"] = False
            yield line, remote_id, cells
    except csv.Error as error:
        raise ImportFileError(
            f"Line {previous_end + 1 + offset} cannot be read as CSV: {error}.", code="csv"
        ) from None


def start(integration, record_type: str, side: str, uploaded, user) -> ReconcileUpload:
    """Read an uploaded export into ReconcileLine rows, to be compared; the file's problems
    are raised now (and nothing is kept)."""
    check_entity_type(integration, record_type)
    if side not in ReconcileUpload.Side.values:
        raise DomainError("Choose which system the export comes from.", field="side")
    ReconcileUpload.purge_expired(integration.tenant)
    with transaction.atomic(), opened_text(uploaded) as text:
        names, reader, offset = read_lines(text)
        id_column, ref_column, key_column = detect_columns(
            names, integration.match_key(record_type)
        )
        if id_column is None:
            found = ", ".join(name for name in names if name) or "nothing"
            raise ImportFileError(
                "The first line must be a header with an id column: a column whose name "
                'contains "id" (e.g. id, DocumentNumber_id, Order ID), optionally a ref. '
                f"Found: {found[:80]}.",
                code="header",
            )
        upload = ReconcileUpload.objects.create(
            tenant=integration.tenant,
            integration=integration,
            record_type=record_type,
            side=side,
            uploaded_by=user,
            filename=(getattr(uploaded, "name", "") or "")[:255],
            size=getattr(uploaded, "size", 0) or 0,
            columns=names,
            id_column=id_column,
            ref_column=ref_column,
            key_column=key_column,
        )
        tenant_id, upload_id, seen = integration.tenant_id, upload.pk, {"numeric": True}
        # COPY takes the cells as JSON text; the ORM's bulk insert as a list.
        as_json = json.dumps if db_connection.vendor == "postgresql" else list
        upload.line_count = copy_rows(
            ReconcileLine,
            ["tenant_id", "upload_id", "kind", "line", "remote_id", "cells"]
            + ["file_ref", "known_ref", "file_key"],  # COPY sets no defaults: compare() does
            (
                (tenant_id, upload_id, Kind.UNKNOWN, line, remote_id, as_json(cells), "", "", "")
                for line, remote_id, cells in _cell_lines(reader, id_column, offset, seen)
            ),
        )
        if not upload.line_count:
            raise ImportFileError("The file has a header but no ids.", code="empty")
        upload.coverage = {key: seen[key] for key in ("low", "high") if seen["numeric"]}
        upload.save(update_fields=["line_count", "coverage"])
    return upload


def choose_columns(upload: ReconcileUpload, ref_column, key_column) -> None:
    """The person's choice of ref and key columns (None: none), for the next comparison."""
    if upload.batch_id:
        raise DomainError("This report was applied already; upload the export again.")
    valid = set(range(len(upload.columns))) - {upload.id_column}
    if {ref_column, key_column} - valid - {None}:
        raise DomainError("Choose columns of the file.")
    upload.ref_column, upload.key_column = ref_column, key_column
    upload.save(update_fields=["ref_column", "key_column"])


# --- comparing --------------------------------------------------------------------------------


def _cell(column: int | None):
    if column is None:
        return Value("")
    return Coalesce(KeyTextTransform(str(column), "cells"), Value(""), output_field=CharField())


def _match_keys(upload) -> dict[str, int | None]:
    """Key or ref of each unlinked record of the other side -> its record (None: ambiguous)."""
    integration = upload.integration
    field = integration.match_key(upload.record_type)
    if upload.side == ReconcileUpload.Side.TARGET:
        rows = unlinked_source_rows(integration, upload.record_type)
    else:
        rows = target_only_rows(integration, upload.record_type)
    found: dict[str, int | None] = {}
    for record_id, key, ref in (
        rows.annotate(key=key_expression(field)).values_list("record_id", "key", "remote_ref")
    ).iterator(chunk_size=CHUNK):
        for value in {key, ref} - {None, ""}:
            found[value] = record_id if found.get(value, record_id) == record_id else None
    return found


def _own_keys(upload, record_ids) -> dict[int, set]:
    """The key each holder has: its data field, or (the ref as key) its refs on the
    integration's other side: what says a line still describes the record holding its id."""
    integration = upload.integration
    field = integration.match_key(upload.record_type)
    ids = list(record_ids)
    own: dict[int, set] = {}
    if field == REMOTE_REF:
        rows = RemoteId.objects.for_tenant(upload.tenant).filter(
            connection=other_connection(integration, upload.side), record_id__in=ids
        )
        pairs = rows.values_list("record_id", "remote_ref")
    else:
        records = Record.objects.for_tenant(upload.tenant).filter(pk__in=ids)
        pairs = records.annotate(key=key_expression(field, record="")).values_list("pk", "key")
    for record_id, key in pairs:
        if key not in (None, ""):
            own.setdefault(record_id, set()).add(str(key))
    return own


def compare(upload: ReconcileUpload, progress=None) -> dict[str, int]:
    """Classify every line of the upload's file, and every id the file lacks; returns counts.

    Set-based: a handful of UPDATE ... FROM statements against the remote ids classify the
    lines all at once (a million lines took 114 s row by row through the ORM). Comparing
    again (other columns chosen) starts from the file's lines.
    """
    progress = progress or (lambda phase, done, total: None)
    tenant, integration = upload.tenant, upload.integration
    connection = side_connection(integration, upload.side)
    total = upload.line_count
    table = db_connection.ops.quote_name(ReconcileLine._meta.db_table)
    remote_ids = db_connection.ops.quote_name(RemoteId._meta.db_table)
    side = [tenant.pk, connection.pk, upload.record_type]
    key_column = upload.key_column if upload.key_column is not None else upload.ref_column
    with transaction.atomic(), db_connection.cursor() as cursor:
        progress("Comparing with the references", 0, total)
        upload.lines.filter(line=0).delete()
        upload.lines.update(
            kind=Kind.UNKNOWN,
            record_id=None,
            known_ref="",
            match_record_id=None,
            shared_integration_id=None,
            file_ref=_cell(upload.ref_column),
            file_key=_cell(key_column),
        )
        # Known here: agrees, or its ref changed.
        cursor.execute(
            f"UPDATE {table} SET record_id = r.record_id, known_ref = r.remote_ref, "  # noqa: S608
            f"kind = CASE WHEN {table}.file_ref <> '' AND {table}.file_ref <> r.remote_ref "
            "THEN %s ELSE %s END "
            f"FROM {remote_ids} r WHERE {table}.tenant_id = %s AND {table}.upload_id = %s "
            f"AND r.tenant_id = {table}.tenant_id AND r.tenant_id = %s "
            "AND r.connection_id = %s AND r.record_type = %s "
            f"AND r.remote_id = {table}.remote_id",
            [Kind.REF_DIFFERS, Kind.OK, tenant.pk, upload.pk, *side],
        )
        _mark_keys(upload)
        # In the file more than once: neither kept nor fixed.
        cursor.execute(
            f"UPDATE {table} SET kind = %s WHERE tenant_id = %s AND upload_id = %s "  # noqa: S608
            f"AND remote_id IN (SELECT remote_id FROM {table} WHERE tenant_id = %s "
            "AND upload_id = %s AND line > 0 GROUP BY remote_id HAVING COUNT(*) > 1)",
            [Kind.TWICE, tenant.pk, upload.pk, tenant.pk, upload.pk],
        )
        # Held here, not in the file: gone, and whose link it is.
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, upload_id, kind, line, remote_id, "  # noqa: S608
            "file_ref, known_ref, record_id, cells, file_key) "
            f"SELECT %s, %s, %s, 0, r.remote_id, '', r.remote_ref, r.record_id, '[]', '' "
            f"FROM {remote_ids} r "
            "WHERE r.tenant_id = %s AND r.connection_id = %s AND r.record_type = %s "
            f"AND NOT EXISTS (SELECT 1 FROM {table} l WHERE l.tenant_id = r.tenant_id "
            "AND l.upload_id = %s AND l.remote_id = r.remote_id)",
            [tenant.pk, upload.pk, Kind.NOT_LINKED, *side, upload.pk],
        )
        _mark_gone(upload)
        counts = dict(_counts(upload.lines.all(), "kind"))
        upload.counts = {kind: counts.get(kind, 0) for kind in Kind.values}
        upload.coverage = _coverage(upload)
        upload.compared_at = timezone.now()
        upload.save(update_fields=["counts", "coverage", "compared_at"])
        progress("Compared", total, total)
    return upload.counts


def _mark_keys(upload) -> None:
    """Reused and matched: lines whose key is the key of exactly one unlinked record here
    (and no other line's), held by another record (reused) or by none (matched)."""
    matches = _match_keys(upload)
    if not matches:
        return
    keyed = upload.lines.exclude(file_key="").filter(
        kind__in=[Kind.UNKNOWN, Kind.OK, Kind.REF_DIFFERS]
    )
    found = [
        (pk, kind, record_id, key)
        for pk, kind, record_id, key in keyed.values_list(
            "pk", "kind", "record_id", "file_key"
        ).iterator(chunk_size=CHUNK)
        if key in matches
    ]
    own = _own_keys(upload, {record_id for _, kind, record_id, _ in found if record_id})
    found = [
        (pk, kind, key)
        for pk, kind, record_id, key in found
        if kind == Kind.UNKNOWN or key not in own.get(record_id, set())
    ]
    per_record = Counter(matches[key] for _, _, key in found if matches[key])
    lines = []
    for pk, kind, key in found:
        record_id = matches[key] if per_record[matches[key]] == 1 else None
        if kind == Kind.UNKNOWN and record_id:
            lines.append(ReconcileLine(pk=pk, record_id=record_id, kind=Kind.MATCHED))
        elif kind != Kind.UNKNOWN:
            lines.append(ReconcileLine(pk=pk, match_record_id=record_id, kind=Kind.REUSED))
    for kind, fields in ((Kind.MATCHED, ["record_id"]), (Kind.REUSED, ["match_record_id"])):
        ReconcileLine.objects.for_tenant(upload.tenant).bulk_update(
            [line for line in lines if line.kind == kind], ["kind", *fields], batch_size=CHUNK
        )


def sharing_integrations(integration, connection, record_type: str):
    """The tenant's other integrations of this entity type on this connection, each with
    the connection on its other side."""
    others = (
        Integration.objects.for_tenant(integration.tenant)
        .exclude(pk=integration.pk)
        .select_related("source", "target")
    )
    for other in others:
        if record_type not in other.synced_entity_types:
            continue
        if connection.pk in (other.source_id, other.target_id):
            yield other, other.target if other.source_id == connection.pk else other.source


def _rows_of(upload, connection):
    return (
        RemoteId.objects.for_tenant(upload.tenant)
        .filter(connection=connection, record_type=upload.record_type)
        .values("record_id")
    )


def _mark_gone(upload) -> None:
    """A gone id linked in this integration is stale; one linked in another integration
    that shares the connection is that one's (so is a reused id whose holder it links)."""
    integration = upload.integration
    here = side_connection(integration, upload.side)
    there = other_connection(integration, upload.side)
    gone = upload.lines.filter(line=0)
    gone.filter(record_id__in=_rows_of(upload, there)).update(kind=Kind.STALE)
    for other, partner in sharing_integrations(integration, here, upload.record_type):
        if partner.pk == there.pk:
            continue
        upload.lines.filter(
            kind__in=[Kind.STALE, Kind.NOT_LINKED, Kind.REUSED],
            shared_integration_id__isnull=True,
            record_id__in=_rows_of(upload, partner),
        ).update(shared_integration_id=other.pk)
    gone.filter(shared_integration_id__isnull=False).update(kind=Kind.GONE_SHARED)


def _coverage(upload) -> dict:
    """What the file covers: its ids and their range, and how many of this integration's
    links on its side it shows; `complete` when that is at least COMPLETE_PERCENT."""
    integration = upload.integration
    here = side_connection(integration, upload.side)
    there = other_connection(integration, upload.side)
    linked = (
        RemoteId.objects.for_tenant(upload.tenant)
        .filter(connection=here, record_type=upload.record_type)
        .filter(record_id__in=_rows_of(upload, there))
        .count()
    )
    shown = linked - upload.counts.get(Kind.STALE, 0)
    ids = upload.lines.filter(line__gt=0).values("remote_id").distinct().count()
    coverage = {key: upload.coverage[key] for key in ("low", "high") if key in upload.coverage}
    return {
        **coverage,
        "ids": ids,
        "linked": linked,
        "shown": shown,
        "percent": 100 if not linked else shown * 100 // linked,
        "complete": not linked or shown * 100 >= COMPLETE_PERCENT * linked,
    }


def _counts(lines, column: str):
    return lines.order_by().values_list(column).annotate(n=Count("pk")).values_list(column, "n")


# --- the recovery plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class FixChoice:
    """What the person ticked: each part of the plan. The default never removes more than
    the file justifies: gone ids only from a complete file, and never another integration's."""

    gone: bool = False
    shared: bool = False
    reused: bool = True
    matched: bool = True

    FIELDS = ("gone", "shared", "reused", "matched")

    @classmethod
    def default(cls, upload: ReconcileUpload) -> FixChoice:
        return cls(gone=bool(upload.coverage.get("complete")))

    @classmethod
    def from_form(cls, data, upload: ReconcileUpload) -> FixChoice:
        """The ticks of a posted form (`choose` marks one that shows them), else the default."""
        if data.get("choose") != "1":
            return cls.default(upload)
        return cls(**{name: data.get(name) == "1" for name in cls.FIELDS})

    def fields(self) -> list[tuple[str, str]]:
        return [("choose", "1")] + [(name, "1") for name in self.FIELDS if getattr(self, name)]


def fixed_lines(upload: ReconcileUpload, choice: FixChoice):
    """The report's lines the plan changes, by the person's choice."""
    lines = upload.lines.none()
    if choice.gone:
        lines |= upload.lines.filter(kind=Kind.STALE)
    if choice.shared:
        lines |= upload.lines.filter(kind=Kind.GONE_SHARED)
    if choice.reused:
        reused = upload.lines.filter(kind=Kind.REUSED, match_record_id__isnull=False)
        lines |= reused if choice.shared else reused.filter(shared_integration_id__isnull=True)
    if choice.matched:
        lines |= upload.lines.filter(kind=Kind.MATCHED)
    return lines


def unlink_count(upload: ReconcileUpload, choice: FixChoice) -> int:
    """How many links of this side the plan removes (a reused id's move removes one)."""
    return fixed_lines(upload, choice).exclude(kind=Kind.MATCHED).count()


def needs_typed_confirmation(upload: ReconcileUpload, choice: FixChoice) -> bool:
    linked = upload.coverage.get("linked", 0)
    return unlink_count(upload, choice) * 100 > CONFIRM_PERCENT * linked


def fix_change_set(upload: ReconcileUpload, actor: Actor, choice: FixChoice | None = None):
    """One plan from one upload, as one restorable batch: unlink what is gone, move reused
    ids to the records their keys match, link new remote records by key."""
    if upload.batch_id:
        raise DomainError("This report was applied already; upload a new export to check again.")
    choice = choice or FixChoice.default(upload)
    integration = upload.integration
    connection_id = side_connection(integration, upload.side).pk

    def set_id(line, record_id, remote_id, note):
        return changes.Change(
            changes.Action.SET_ID,
            line=line.line,
            record_id=record_id,
            connection_id=connection_id,
            remote_id=remote_id,
            remote_ref="" if remote_id is None else line.file_ref,
            note=note,
        )

    change_list = []
    for line in fixed_lines(upload, choice).order_by("line", "id").iterator(chunk_size=CHUNK):
        if line.kind == Kind.MATCHED:
            change_list.append(
                set_id(line, line.record_id, line.remote_id, f"its key {line.file_key} matches")
            )
        elif line.kind == Kind.REUSED:
            change_list += [
                set_id(line, line.record_id, None, f"reused: its key {line.file_key} is another's"),
                set_id(line, line.match_record_id, line.remote_id, f"its key {line.file_key}"),
            ]
        else:
            change_list.append(set_id(line, line.record_id, None, "not in the remote export"))
    return reference_change_set(
        integration,
        upload.record_type,
        actor,
        Batch.Kind.RECONCILE,
        change_list,
        audit_action=AuditEntry.Action.RECONCILE,
        audit_each=len(change_list) <= 100,
        description=f"Reconciled {{written}} {upload.record_type} ids with "
        f"{upload.filename or 'a remote export'}",
    )


def fix_counts(plan) -> dict[str, int]:
    return {
        "removed": plan.counts[changes.REMOVED],
        "linked": plan.counts[changes.NEW] + plan.counts[changes.CHANGED],
        "rejected": plan.counts[changes.REJECTED],
    }


def record_names(upload: ReconcileUpload, record_ids) -> dict[int, str]:
    """Each record as people know it: its id (and ref) on the integration's other side, else
    on another connection, else on the file's side ("Fortnox 97001 only")."""
    integration = upload.integration
    there = other_connection(integration, upload.side)
    rows = (
        RemoteId.objects.for_tenant(upload.tenant)
        .filter(record_id__in=[pk for pk in record_ids if pk])
        .select_related("connection")
        .only("record_id", "remote_id", "remote_ref", "connection__name")
        .order_by("record_id", "id")
    )
    names: dict[int, tuple[int, str]] = {}
    here_id = side_connection(integration, upload.side).pk
    for row in rows:
        rank = 0 if row.connection_id == there.pk else 2 if row.connection_id == here_id else 1
        ref = f" ({row.remote_ref})" if row.remote_ref else ""
        name = f"{row.connection.name} {row.remote_id}{ref}"
        if rank == 2:
            name += " only"
        if row.record_id not in names or rank < names[row.record_id][0]:
            names[row.record_id] = (rank, name)
    return {record_id: name for record_id, (_, name) in names.items()}

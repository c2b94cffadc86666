"""Reconciliation: compare refdesk's ids of one side with that system's own export.

    upload = start(integration, "order", "target", uploaded_file, user)   # reads the file
    compare(upload)                                                       # the report
    change_set = fix_change_set(upload, actor)                            # plan/apply

The export is a CSV with a header (any names): the id is the first column whose name contains
"id", the ref (optional) the first whose name contains "ref", "number" or "name". Each line of
the file, and each id refdesk knows that the file lacks, gets one class:

- stale: refdesk has the id, the remote system does not any more (so the next sync updates
  nothing, or the wrong record); fixed by removing it here;
- matched: the remote system has it, no reference knows it, but its ref is the key of exactly
  one unlinked record here; fixed by linking that record to it;
- unknown: the remote system has it and nothing here knows or matches it;
- ref differs: both know the id, with different refs;
- twice: the id is in the file more than once;
- ok: both agree.

The upload request reads the file once, a line at a time, into ReconcileLine rows (COPY on
PostgreSQL): its text is never kept. The comparison classifies those rows in SQL (a job when
large); the report is all that is kept, for a day (`manage.py purge_uploads`).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from common.errors import DomainError
from records import changes
from records.audit import Actor
from records.models import AuditEntry, Batch, RemoteId

from .findings.keys import key_expression, target_only_rows
from .imports import unescape_cell
from .models import ReconcileLine, ReconcileUpload
from .services import check_entity_type, reference_change_set, unlinked_source_rows
from .uploads import ImportFileError, copy_rows, opened_text, sniff_delimiter

Kind = ReconcileLine.Kind
CHUNK = 2000
ID_WORDS = ("id",)
REF_WORDS = ("ref", "number", "name")
# Classes in the order the report's tabs show them.
CLASSES = (Kind.STALE, Kind.MATCHED, Kind.UNKNOWN, Kind.REF_DIFFERS, Kind.TWICE)


def side_connection(integration, side: str):
    return integration.source if side == ReconcileUpload.Side.SOURCE else integration.target


# --- reading the export -----------------------------------------------------------------------


def _column(names: list[str], words, skip: int | None = None) -> int | None:
    for position, name in enumerate(names):
        if position != skip and any(word in name.lower() for word in words):
            return position
    return None


def read_lines(lines: Iterator[str]) -> Iterator[tuple[int, str, str]]:
    """(line number, id, ref) of each line of the export, read as they are consumed;
    ImportFileError for a bad header at once, for a bad line when it is reached."""
    delimiter, body, offset = sniff_delimiter(lines)
    reader = csv.reader(body, delimiter=delimiter)
    try:
        header = next(reader, None) or []
    except csv.Error:
        header = []
    names = [name.strip().strip("\ufeff") for name in header]
    id_column = _column(names, ID_WORDS)
    if id_column is None:
        found = ", ".join(name for name in names if name) or "nothing"
        raise ImportFileError(
            "The first line must be a header with an id column: a column whose name contains "
            f'"id" (e.g. id, DocumentNumber_id, Order ID), optionally a ref. Found: {found[:80]}.',
            code="header",
        )
    return _id_lines(reader, id_column, _column(names, REF_WORDS, skip=id_column), offset)


def _id_lines(reader, id_column: int, ref_column: int | None, offset: int):
    previous_end = reader.line_num
    try:
        for values in reader:
            line = previous_end + 1 + offset
            previous_end = reader.line_num
            if len(values) <= id_column or not values[id_column].strip():
                continue
            ref = values[ref_column] if ref_column is not None and ref_column < len(values) else ""
            yield line, unescape_cell(values[id_column].strip()), unescape_cell(ref.strip())
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
        lines = read_lines(text)
        upload = ReconcileUpload.objects.create(
            tenant=integration.tenant,
            integration=integration,
            record_type=record_type,
            side=side,
            uploaded_by=user,
            filename=(getattr(uploaded, "name", "") or "")[:255],
            size=getattr(uploaded, "size", 0) or 0,
        )
        tenant_id, upload_id = integration.tenant_id, upload.pk
        upload.line_count = copy_rows(
            ReconcileLine,
            ["tenant_id", "upload_id", "kind", "line", "remote_id", "file_ref", "known_ref"],
            (
                (tenant_id, upload_id, Kind.UNKNOWN, line, remote_id[:255], ref[:255], "")
                for line, remote_id, ref in lines
            ),
        )
        if not upload.line_count:
            raise ImportFileError("The file has a header but no ids.", code="empty")
        upload.save(update_fields=["line_count"])
    return upload


# --- comparing --------------------------------------------------------------------------------


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


def compare(upload: ReconcileUpload, progress=None) -> dict[str, int]:
    """Classify every line of the upload's file, and every id the file lacks; returns counts.

    Set-based: the lines go in with one COPY (PostgreSQL) or bulk inserts, then a handful of
    UPDATE ... FROM statements against the remote ids classify them all at once. A million
    lines took 114 s row by row through the ORM.
    """
    progress = progress or (lambda phase, done, total: None)
    tenant, integration = upload.tenant, upload.integration
    connection = side_connection(integration, upload.side)
    total = upload.line_count
    table = db_connection.ops.quote_name(ReconcileLine._meta.db_table)
    remote_ids = db_connection.ops.quote_name(RemoteId._meta.db_table)
    side = [tenant.pk, connection.pk, upload.record_type]
    with transaction.atomic(), db_connection.cursor() as cursor:
        progress("Comparing with the references", 0, total)
        # Known here: agrees, or its ref differs.
        cursor.execute(
            f"UPDATE {table} SET record_id = r.record_id, known_ref = r.remote_ref, "  # noqa: S608
            f"kind = CASE WHEN {table}.file_ref <> '' AND {table}.file_ref <> r.remote_ref "
            "THEN %s ELSE %s END "
            f"FROM {remote_ids} r WHERE {table}.upload_id = %s AND r.tenant_id = %s "
            "AND r.connection_id = %s AND r.record_type = %s "
            f"AND r.remote_id = {table}.remote_id",
            [Kind.REF_DIFFERS, Kind.OK, upload.pk, *side],
        )
        # In the file more than once.
        cursor.execute(
            f"UPDATE {table} SET kind = %s WHERE upload_id = %s AND remote_id IN "  # noqa: S608
            f"(SELECT remote_id FROM {table} WHERE upload_id = %s "
            "GROUP BY remote_id HAVING COUNT(*) > 1)",
            [Kind.TWICE, upload.pk, upload.pk],
        )
        _mark_matched(upload)
        # Known here, not in the file: stale.
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, upload_id, kind, line, remote_id, "  # noqa: S608
            "file_ref, known_ref, record_id) "
            f"SELECT %s, %s, %s, 0, r.remote_id, '', r.remote_ref, r.record_id "
            f"FROM {remote_ids} r "
            "WHERE r.tenant_id = %s AND r.connection_id = %s AND r.record_type = %s "
            f"AND NOT EXISTS (SELECT 1 FROM {table} l WHERE l.upload_id = %s "
            "AND l.remote_id = r.remote_id)",
            [tenant.pk, upload.pk, Kind.STALE, *side, upload.pk],
        )
        counts = dict(_counts(upload.lines.all(), "kind"))
        upload.counts = {kind: counts.get(kind, 0) for kind in Kind.values}
        upload.compared_at = timezone.now()
        upload.save(update_fields=["counts", "compared_at"])
        progress("Compared", total, total)
    return upload.counts


def _mark_matched(upload) -> None:
    """Unknown lines whose ref is the key of exactly one unlinked record here (and no other
    line matches that record): the record to link the id to."""
    matches = _match_keys(upload)
    if not matches:
        return
    candidates = (
        upload.lines.filter(kind=Kind.UNKNOWN)
        .exclude(file_ref="")
        .values_list("pk", "file_ref")
        .iterator(chunk_size=CHUNK)
    )
    found = [(pk, matches[ref]) for pk, ref in candidates if matches.get(ref)]
    per_record = Counter(record_id for _, record_id in found)
    ReconcileLine.objects.for_tenant(upload.tenant).bulk_update(
        [
            ReconcileLine(pk=pk, record_id=record_id, kind=Kind.MATCHED)
            for pk, record_id in found
            if per_record[record_id] == 1
        ],
        ["record_id", "kind"],
        batch_size=CHUNK,
    )


def _counts(lines, column: str):
    return lines.order_by().values_list(column).annotate(n=Count("pk")).values_list(column, "n")


# --- the fix ----------------------------------------------------------------------------------


def fix_change_set(upload: ReconcileUpload, actor: Actor):
    """Remove the stale ids here and link the matched ones, as one restorable batch."""
    if upload.batch_id:
        raise DomainError("This report was applied already; upload a new export to check again.")
    integration = upload.integration
    connection = side_connection(integration, upload.side)
    change_list = [
        changes.Change(
            changes.Action.SET_ID,
            line=line.line,
            record_id=line.record_id,
            connection_id=connection.pk,
            remote_id=None if line.kind == Kind.STALE else line.remote_id,
            remote_ref=line.file_ref,
            note="not in the remote export"
            if line.kind == Kind.STALE
            else f"matched by ref {line.file_ref} in the remote export",
        )
        for line in upload.lines.filter(kind__in=[Kind.STALE, Kind.MATCHED]).order_by("line", "id")
    ]
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

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

The file is read once into ReconcileLine rows (in chunks, so a million lines stream), and the
text is dropped once compared: the report is all that is kept, for a day.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from records import changes
from records.audit import Actor
from records.errors import DomainError
from records.models import AuditEntry, Batch, RemoteId

from .health import key_expression, target_only_rows
from .imports import ImportFileError, _sniff_delimiter, read_upload, unescape_cell
from .models import ReconcileLine, ReconcileUpload
from .services import check_entity_type, reference_change_set, unlinked_source_rows

Kind = ReconcileLine.Kind
CHUNK = 2000
KEPT_FOR = timedelta(days=1)
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


def read_lines(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, id, ref) of each line of the export; ImportFileError for a bad file."""
    delimiter, body = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
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
    ref_column = _column(names, REF_WORDS, skip=id_column)
    offset = 0 if body is text else 1
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
    """Keep an uploaded export until it is compared; the file's problems are raised now."""
    check_entity_type(integration, record_type)
    if side not in ReconcileUpload.Side.values:
        raise DomainError("Choose which system the export comes from.", field="side")
    text = read_upload(uploaded)
    for _ in read_lines(text[:65536].rsplit("\n", 1)[0] if len(text) > 65536 else text):
        break  # the header is checked here, the lines when compared
    else:
        raise ImportFileError("The file has a header but no ids.", code="empty")
    ReconcileUpload.objects.for_tenant(integration.tenant).filter(
        created_at__lt=timezone.now() - KEPT_FOR
    ).delete()
    return ReconcileUpload.objects.create(
        tenant=integration.tenant,
        integration=integration,
        record_type=record_type,
        side=side,
        uploaded_by=user,
        filename=(getattr(uploaded, "name", "") or "")[:255],
        size=getattr(uploaded, "size", 0) or 0,
        text=text,
    )


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
    """Classify every line of the upload's file, and every id the file lacks; returns counts."""
    progress = progress or (lambda phase, done, total: None)
    tenant, integration = upload.tenant, upload.integration
    connection = side_connection(integration, upload.side)
    known = RemoteId.objects.for_tenant(tenant).filter(
        connection=connection, record_type=upload.record_type
    )
    matches = _match_keys(upload)
    lines = list(read_lines(upload.text))
    total = len(lines)
    seen: dict[str, int] = {}
    with transaction.atomic():
        upload.lines.all().delete()
        for start_at in range(0, total, CHUNK):
            chunk = lines[start_at : start_at + CHUNK]
            here = {
                remote_id: (record_id, remote_ref)
                for remote_id, record_id, remote_ref in known.filter(
                    remote_id__in=[remote_id for _, remote_id, _ in chunk]
                ).values_list("remote_id", "record_id", "remote_ref")
            }
            rows = []
            for line, remote_id, ref in chunk:
                seen[remote_id] = seen.get(remote_id, 0) + 1
                record_id, known_ref = here.get(remote_id, (None, ""))
                if record_id is not None:
                    kind = Kind.REF_DIFFERS if ref and ref != known_ref else Kind.OK
                elif ref and matches.get(ref):
                    kind, record_id = Kind.MATCHED, matches[ref]
                else:
                    kind = Kind.UNKNOWN
                rows.append(
                    ReconcileLine(
                        upload=upload,
                        kind=kind,
                        line=line,
                        remote_id=remote_id[:255],
                        file_ref=ref[:255],
                        known_ref=known_ref,
                        record_id=record_id,
                    )
                )
            ReconcileLine.objects.bulk_create(rows)
            progress("Comparing the file", start_at + len(chunk), total)
        twice = [remote_id for remote_id, n in seen.items() if n > 1]
        for start_at in range(0, len(twice), CHUNK):
            upload.lines.filter(remote_id__in=twice[start_at : start_at + CHUNK]).update(
                kind=Kind.TWICE
            )
        # A record matched by two lines of the file is no match at all.
        matched_twice = [
            record_id
            for record_id, n in _counts(upload.lines.filter(kind=Kind.MATCHED), "record_id")
            if n > 1
        ]
        if matched_twice:
            upload.lines.filter(kind=Kind.MATCHED, record_id__in=matched_twice).update(
                kind=Kind.UNKNOWN, record_id=None
            )
        stale = []
        for remote_id, record_id, remote_ref in known.values_list(
            "remote_id", "record_id", "remote_ref"
        ).iterator(chunk_size=CHUNK):
            if remote_id not in seen:
                stale.append(
                    ReconcileLine(
                        upload=upload,
                        kind=Kind.STALE,
                        line=0,
                        remote_id=remote_id,
                        known_ref=remote_ref,
                        record_id=record_id,
                    )
                )
        ReconcileLine.objects.bulk_create(stale, batch_size=CHUNK)
        counts = dict(_counts(upload.lines.all(), "kind"))
        upload.counts = {kind: counts.get(kind, 0) for kind in Kind.values}
        upload.line_count = total
        upload.compared_at = timezone.now()
        upload.text = ""
        upload.save(update_fields=["counts", "line_count", "compared_at", "text"])
    return upload.counts


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

"""A CSV import uploaded on the Import page, in bounded memory at any size the page allows.

    upload = store(integration, record_type, uploaded_file, user)   # streams it into lines
    plan_upload(upload, progress)      # in the request when small, else as a job ("import_plan")
    preview_lines(upload, Kind.REJECTED, after=0)                    # a page of stored outcomes
    apply_upload(upload, actor, progress)                            # plans again, writes

The upload request reads the file once, a line at a time, into ImportLine rows (COPY on
PostgreSQL); the text is never kept. The plan is the engine's (records.changes), run on chunks
of lines: lines that share an id with another line, or that move away an id another line
wants, are planned together in one change set (the rules that compare lines need them side by
side); every other line's outcome depends on itself and the database only, so planning it in
a chunk gives the outcome the whole file would. Each line's outcome is stored, and the
preview pages through them instead of planning again on every view.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from common.errors import DomainError
from records import changes
from records.models import RemoteId

from . import imports, uploads
from .imports import FileLine, Kind
from .models import ImportLine, ImportUpload
from .services import check_entity_type

PLAN_CHUNK = 10_000  # lines per change set when planning: about 20 MB of engine objects
RAW = ("line", "source_id", "target_id", "source_ref", "target_ref", "problem")
KINDS = (Kind.NEW, Kind.CHANGE, Kind.UNCHANGED, Kind.REJECTED)
LINKING_UNLINKED = "linking_unlinked"  # in upload.counts beside the outcomes


# --- upload -------------------------------------------------------------------------------------


def store(integration, record_type: str, uploaded, user) -> ImportUpload:
    """Read an uploaded CSV into ImportLine rows; ImportFileError (nothing kept) if it is bad."""
    check_entity_type(integration, record_type)
    with transaction.atomic(), uploads.opened_text(uploaded) as text:
        header, lines = imports.read_csv(text)
        upload = ImportUpload.objects.create(
            tenant=integration.tenant,
            integration=integration,
            record_type=record_type,
            uploaded_by=user,
            filename=(getattr(uploaded, "name", "") or "")[:255],
            size=uploaded.size,
            ignored_columns=header.ignored_columns,
        )
        tenant_id, upload_id = integration.tenant_id, upload.pk
        upload.line_count = uploads.copy_rows(
            ImportLine,
            ["tenant_id", "upload_id", *RAW],
            ((tenant_id, upload_id, *line) for line in lines),
        )
        upload.save(update_fields=["line_count"])
    return upload


# --- plan ---------------------------------------------------------------------------------------


def plans_as_job(upload: ImportUpload) -> bool:
    return upload.line_count > settings.REFDESK_PLAN_JOB_THRESHOLD


def plan_upload(upload: ImportUpload, progress=None) -> dict[str, int]:
    """Plan every line of the upload and keep each outcome; returns the counts."""
    progress = progress or (lambda phase, done, total: None)
    total = upload.line_count
    lines = ImportLine.objects.for_tenant(upload.tenant).filter(upload=upload)
    with transaction.atomic():
        progress("Finding lines that share ids", 0, total)
        _analyze()
        mark_entangled(upload)
        entangled = list(lines.filter(entangled=True).values_list("pk", *RAW))
        done = _plan_chunk(upload, entangled, entangled=True)
        unplanned = lines.filter(kind="").order_by("line").values_list("pk", *RAW)
        after = 0
        # By line, not "the first unplanned" each time: the lines planned before are deleted
        # rows this transaction still steps over in the index until it commits.
        while chunk := list(unplanned.filter(line__gt=after)[:PLAN_CHUNK]):
            progress("Planning the import", done, total)
            done += _plan_chunk(upload, chunk, entangled=False)
            after = chunk[-1][1]
        found = dict(lines.order_by().values_list("kind").annotate(n=Count("pk")))
        upload.counts = {kind: found.get(kind, 0) for kind in KINDS}
        upload.counts[LINKING_UNLINKED] = _linking_unlinked(lines)
        upload.planned_at = timezone.now()
        upload.save(update_fields=["counts", "planned_at"])
        progress("Planned", total, total)
    return upload.counts


def _analyze() -> None:
    """Fresh statistics for the line table: a million lines just came in by COPY, and
    without them PostgreSQL plans the joins below as if the table were empty."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(ImportLine._meta.db_table)}")


def mark_entangled(upload: ImportUpload) -> None:
    """Flag the lines whose outcome can depend on another line (see the module docstring):
    an id on more than one line, or a target id whose holder another line relinks.

    Each is one UPDATE with EXISTS (a semi-join PostgreSQL hashes); `IN (subquery) OR ...`
    took minutes at a million lines.
    """
    integration = upload.integration
    table = connection.ops.quote_name(ImportLine._meta.db_table)
    remote_ids = connection.ops.quote_name(RemoteId._meta.db_table)
    # Every table is matched on tenant_id too: one shard on Citus.
    other = (
        f"SELECT 1 FROM {table} o WHERE o.tenant_id = {table}.tenant_id "  # noqa: S608
        f"AND o.upload_id = %s AND o.id <> {table}.id AND "
    )
    holder = (
        f"FROM {remote_ids} t JOIN {remote_ids} s ON s.tenant_id = t.tenant_id "
        "AND s.connection_id = %s AND s.record_type = t.record_type "
        "AND s.record_id = t.record_id "
        f"JOIN {table} o ON o.tenant_id = t.tenant_id AND o.upload_id = %s "
        f"AND o.id <> {table}.id "
        "WHERE t.tenant_id = %s AND t.connection_id = %s AND t.record_type = %s"
    )
    ids = [integration.source_id, upload.pk, upload.tenant_id, integration.target_id]
    ids.append(upload.record_type)
    conditions = [
        # The same source id, or the same target id, on another line.
        (f"source_id <> '' AND EXISTS ({other}o.source_id = {table}.source_id)", [upload.pk]),
        (f"target_id <> '' AND EXISTS ({other}o.target_id = {table}.target_id)", [upload.pk]),
        # This line's target id is held by a record another line (o) names by source id.
        (
            f"EXISTS (SELECT 1 {holder} AND t.remote_id = {table}.target_id "
            "AND o.source_id = s.remote_id)",
            ids,
        ),
        # This line names a record whose target id another line (o) wants.
        (
            f"EXISTS (SELECT 1 {holder} AND s.remote_id = {table}.source_id "
            "AND o.target_id = t.remote_id)",
            ids,
        ),
    ]
    with connection.cursor() as cursor:
        for condition, params in conditions:
            cursor.execute(
                f"UPDATE {table} SET entangled = %s "  # noqa: S608 (our tables)
                f"WHERE tenant_id = %s AND upload_id = %s AND NOT entangled AND {condition}",
                [True, upload.tenant_id, upload.pk, *params],
            )


def _plan_chunk(upload: ImportUpload, rows: list[tuple], *, entangled: bool) -> int:
    """Plan these lines (pk and RAW values) as one change set and store their outcomes in
    their place (deleted and inserted again: far cheaper than updating each)."""
    if not rows:
        return 0
    file_lines = [FileLine(*row[1:]) for row in rows]
    result = changes.plan(
        imports.lines_change_set(upload.integration, upload.record_type, file_lines)
    )
    raw = {line.line: line for line in file_lines}
    planned = [
        _outcome_row(upload, raw[row.line], row, entangled)
        for row in imports._preview_rows(upload.integration, result)
    ]
    ImportLine.objects.for_tenant(upload.tenant).filter(pk__in=[row[0] for row in rows]).delete()
    uploads.copy_rows(ImportLine, OUTCOME_COLUMNS, planned)
    return len(rows)


OUTCOME_COLUMNS = [
    "tenant_id",
    "upload_id",
    *RAW,
    "entangled",
    "kind",
    "reason",
    "shown_source_ref",
    "shown_target_ref",
    "source_known",
    "source_ref_changes",
    "target_now_id",
    "target_now_ref",
]


def _outcome_row(upload, line: FileLine, row: imports.PlannedRow, entangled: bool) -> tuple:
    target_now = row.target_row
    return (
        upload.tenant_id,
        upload.pk,
        *line,
        entangled,
        row.kind,
        row.reason,
        row.source_ref,
        row.target_ref,
        row.source_row is not None,
        row.source_changes,
        target_now.remote_id if target_now else "",
        target_now.remote_ref if target_now else "",
    )


# --- preview and apply -----------------------------------------------------------------------


def preview_lines(upload: ImportUpload, kind: str, *, after: int = 0, size: int = 200):
    """A page of the lines of one outcome, in file order, after line `after`."""
    return list(
        ImportLine.objects.for_tenant(upload.tenant)
        .filter(upload=upload, kind=kind, line__gt=after)
        .order_by("line")[:size]
    )


def _linking_unlinked(lines) -> int:
    """New links of records the source knows: unlinked now, linked after the import."""
    return lines.filter(kind=Kind.NEW, source_known=True, target_now_id="").count()


def file_lines(upload: ImportUpload) -> list[FileLine]:
    """The upload's lines as the file gave them, in file order (what the apply plans)."""
    lines = ImportLine.objects.for_tenant(upload.tenant).filter(upload=upload)
    return [FileLine(*row) for row in lines.order_by("line").values_list(*RAW).iterator(5000)]


def keep_rejected_lines(upload: ImportUpload, rejected: dict[int, str]) -> None:
    """Drop the applied upload's lines but those the apply refused (`rejected`: reasons by
    line number). Nearly always the preview refused the same lines: those the apply alone
    refused or accepted (what it read had changed since) are the few rewritten one by one."""
    lines = ImportLine.objects.for_tenant(upload.tenant).filter(upload=upload)
    before = set(lines.filter(kind=Kind.REJECTED).values_list("line", flat=True))
    for number in set(rejected) - before:
        lines.filter(line=number).update(kind=Kind.REJECTED, reason=rejected[number])
    for number in before - set(rejected):
        lines.filter(line=number).delete()
    lines.exclude(kind=Kind.REJECTED).delete()


def apply_upload(upload: ImportUpload, actor, progress=None) -> imports.ImportResult:
    """Plan the upload's lines again and write what they accept, then drop the lines but the
    rejected ones, with the apply's reasons: the batch and its audit entry are the record of
    what was imported, and the result page still says why each refused line was refused."""
    if upload.planned_at is None:
        raise DomainError("This file is still being checked; wait for its preview.")
    with transaction.atomic():
        result = imports.apply_lines(
            upload.integration,
            upload.record_type,
            lambda: file_lines(upload),
            actor,
            filename=upload.filename,
            upload=upload,
            progress=progress,
        )
        keep_rejected_lines(upload, result.rejected)
    return result

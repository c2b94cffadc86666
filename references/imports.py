"""CSV import of references: parse, plan (the dry run), apply as one restorable batch.

The same functions serve the upload pages and `manage.py import_references`:

    parsed = parse_csv(decode_csv(data))          # file-level errors raise ImportFileError
    plan = plan_import(integration, record_type, parsed)      # reads only, a few IN queries
    result = apply_import(integration, record_type, text, actor)   # plans again, then writes

Apply is one transaction and one Batch: every remote-id row it replaces is recorded as
`removed`, every row it writes as `added`, so `restore_batch` undoes it; records it had to
create are listed in `batch.details` and deleted again by the restore.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from integrations.models import new_hex_id
from records.errors import DomainError, InvalidValue
from records.models import AuditEntry, Batch, BatchChange, Record, RemoteId
from records.services import Actor, write_audit

from .services import ReferenceInput, _check_entity_type

REQUIRED_COLUMNS = ("source_id", "target_id")
OPTIONAL_COLUMNS = ("source_ref", "target_ref")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
MAX_HEADER_LENGTH = 1000
# Ids per IN (...) query: well under SQLite's limit on bound parameters.
CHUNK = 2000


def max_upload_bytes() -> int:
    return getattr(settings, "REFDESK_IMPORT_MAX_BYTES", 20 * 1024 * 1024)


class ImportFileError(DomainError):
    """The file as a whole cannot be read: nothing of it is planned or written."""


# --- reading the file ---------------------------------------------------------------------


def decode_csv(data: bytes) -> str:
    """UTF-8 text with or without a BOM (Excel's "CSV UTF-8"); anything else is refused."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ImportFileError(
            f"The file is not UTF-8 text (line {line} has the byte 0x{data[error.start]:02X}). "
            'In Excel use "Save as" > "CSV UTF-8 (Comma delimited) (*.csv)".',
            code="encoding",
        ) from None
    if "\x00" in text:
        raise ImportFileError(
            "The file contains NUL bytes: it is not a CSV text file.", code="encoding"
        )
    if not text.strip():
        raise ImportFileError("The file is empty.", code="empty")
    return text


def read_upload(uploaded) -> str:
    """Bytes of an uploaded file (size-capped) decoded as UTF-8."""
    limit = max_upload_bytes()
    if uploaded.size > limit:
        raise ImportFileError(
            f"The file is {uploaded.size / 1_048_576:.1f} MB; at most "
            f"{limit / 1_048_576:.0f} MB can be uploaded here. Split it into smaller files, "
            "or ask your administrator to run manage.py import_references for very large files.",
            code="too_large",
        )
    return decode_csv(uploaded.read())


@dataclass
class ParsedRow:
    line: int
    source_id: str
    target_id: str
    source_ref: str = ""
    target_ref: str = ""


@dataclass
class ParsedFile:
    delimiter: str
    columns: list[str]
    ignored_columns: list[str]
    rows: list[ParsedRow]
    # Lines that are not a row of the header's shape: (line, reason).
    malformed: list[tuple[int, str]] = field(default_factory=list)


def _header_name(value: str) -> str:
    return value.strip().strip("\ufeff").lower().replace(" ", "_").replace("-", "_")


def _sniff_delimiter(text: str) -> tuple[str, str]:
    """The separator from the header line (or Excel's `sep=;` line); returns (sep, rest)."""
    first, _, rest = text.partition("\n")
    first = first.rstrip("\r")
    if first.lower().startswith("sep=") and len(first) == 5 and first[4] in ",;":
        return first[4], rest
    commas, semicolons = first.count(","), first.count(";")
    if commas and semicolons:
        raise ImportFileError(
            "The header line mixes commas and semicolons. Use one separator throughout "
            "(a comma or a semicolon), e.g. source_id,target_id.",
            code="delimiter",
        )
    return (";" if semicolons else ","), text


def parse_csv(text: str) -> ParsedFile:
    """Rows of a references CSV, or ImportFileError naming what is wrong with the file."""
    delimiter, body = _sniff_delimiter(text)
    other = ";" if delimiter == "," else ","
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    first_line = body[: MAX_HEADER_LENGTH + 1].partition("\n")[0]
    try:
        header = next(reader, None) if len(first_line) <= MAX_HEADER_LENGTH else None
    except csv.Error:
        header = None
    names = [_header_name(value) for value in header or []]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if missing:
        found = ", ".join(name for name in names if name) or first_line.strip() or "nothing"
        found = found if len(found) <= 80 else found[:80] + "..."
        raise ImportFileError(
            "The first line must be a header naming the columns source_id and target_id "
            f"(optional: source_ref, target_ref), separated by commas or semicolons. "
            f"Found: {found}.",
            code="header",
        )
    duplicated = sorted({name for name in names if name and names.count(name) > 1})
    if duplicated:
        raise ImportFileError(
            f"The header names {', '.join(duplicated)} more than once.", code="header"
        )
    index = {name: names.index(name) for name in COLUMNS if name in names}
    ignored = [name for name in names if name and name not in COLUMNS]
    width = len(names)
    offset = 0 if body is text else 1  # the `sep=` line is line 1
    rows, malformed = [], []
    previous_end = reader.line_num
    try:
        for values in reader:
            line = previous_end + 1 + offset
            previous_end = reader.line_num
            if not any(value.strip() for value in values):
                continue  # blank line, or Excel's ",,," for an empty row
            if len(values) > width and not any(v.strip() for v in values[width:]):
                values = values[:width]
            if len(values) != width:
                if len(values) < width and any(other in value for value in values):
                    raise ImportFileError(
                        f"Line {line} is separated by '{other}' but the header uses "
                        f"'{delimiter}'. Use one separator throughout the file.",
                        code="delimiter",
                    )
                malformed.append(
                    (line, f"Expected {width} columns like the header, found {len(values)}.")
                )
                continue
            rows.append(
                ParsedRow(
                    line=line,
                    **{name: values[position] for name, position in index.items()},
                )
            )
    except csv.Error as error:
        raise ImportFileError(
            f"Line {previous_end + 1 + offset} cannot be read as CSV: {error}.", code="csv"
        ) from None
    return ParsedFile(delimiter, [n for n in names if n in COLUMNS], ignored, rows, malformed)


# --- the plan (dry run) ---------------------------------------------------------------------


class Kind:
    NEW = "new"
    CHANGE = "change"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Existing:
    pk: int
    record_id: int
    remote_id: str
    remote_ref: str


@dataclass
class PlannedRow:
    line: int
    source_id: str
    target_id: str
    source_ref: str = ""
    target_ref: str = ""
    kind: str = Kind.REJECTED
    reason: str = ""
    source_row: Existing | None = None  # the source's current row, if S knows the id
    target_row: Existing | None = None  # the record's current target row, if linked

    @property
    def before_target(self) -> str:
        return self.target_row.remote_id if self.target_row else ""

    @property
    def source_changes(self) -> bool:
        return self.source_row is not None and self.source_row.remote_ref != self.source_ref

    @property
    def target_changes(self) -> bool:
        row = self.target_row
        return row is None or (row.remote_id, row.remote_ref) != (self.target_id, self.target_ref)


@dataclass
class ImportPlan:
    integration: object
    record_type: str
    rows: list[PlannedRow]
    ignored_columns: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[PlannedRow]:
        return [row for row in self.rows if row.kind == kind]

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((Kind.NEW, Kind.CHANGE, Kind.UNCHANGED, Kind.REJECTED), 0)
        for row in self.rows:
            counts[row.kind] += 1
        return counts

    @property
    def to_write(self) -> list[PlannedRow]:
        return [row for row in self.rows if row.kind in (Kind.NEW, Kind.CHANGE)]


def _chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows_by(queryset, lookup: str, values: Iterable) -> list[Existing]:
    found = []
    for chunk in _chunks(sorted(set(values))):
        found.extend(
            Existing(*row)
            for row in queryset.filter(**{f"{lookup}__in": chunk}).values_list(
                "pk", "record_id", "remote_id", "remote_ref"
            )
        )
    return found


def _reject(row: PlannedRow, reason: str) -> None:
    row.kind, row.reason = Kind.REJECTED, reason


def _validate(parsed: ParsedFile) -> list[PlannedRow]:
    planned = []
    for raw in parsed.rows:
        row = PlannedRow(raw.line, raw.source_id, raw.target_id, raw.source_ref, raw.target_ref)
        row.kind = ""
        try:
            # An empty target is allowed here: it means "not linked" (what export writes).
            clean = ReferenceInput(
                raw.source_id, raw.target_id or "-", raw.source_ref, raw.target_ref
            ).cleaned()
        except InvalidValue as error:
            row.source_id, row.target_id = raw.source_id.strip(), raw.target_id.strip()
            _reject(row, error.message)
        else:
            row.source_id, row.source_ref, row.target_ref = (
                clean.source_id,
                clean.source_ref,
                clean.target_ref,
            )
            row.target_id = raw.target_id.strip()
        planned.append(row)
    planned.extend(
        PlannedRow(line, "", "", kind=Kind.REJECTED, reason=reason)
        for line, reason in parsed.malformed
    )
    planned.sort(key=lambda row: row.line)
    return planned


def _reject_duplicates(rows: list[PlannedRow]) -> None:
    """A source or target id on several lines: the same pair twice keeps the first line;
    different pairs reject every line (we do not guess which one is right)."""
    for key, other in (("source_id", "target_id"), ("target_id", "source_id")):
        groups: dict[str, list[PlannedRow]] = defaultdict(list)
        for row in rows:
            if row.kind != Kind.REJECTED and getattr(row, key):
                groups[getattr(row, key)].append(row)
        label = "Source" if key == "source_id" else "Target"
        for value, group in groups.items():
            if len(group) < 2:
                continue
            if len({getattr(row, other) for row in group}) == 1:
                for row in group[1:]:
                    _reject(row, f"Duplicate of line {group[0].line}.")
            else:
                lines = ", ".join(str(row.line) for row in group[:5])
                more = "..." if len(group) > 5 else ""
                for row in group:
                    _reject(
                        row,
                        f"{label} {value} is on more than one line ({lines}{more}) with "
                        "different ids; fix the file so it appears once.",
                    )


def plan_import(integration, record_type: str, parsed: ParsedFile) -> ImportPlan:
    """Classify every row: new link, change, unchanged, or rejected with the reason.

    Reads the current state with a few IN queries per 2,000 ids; writes nothing.
    """
    _check_entity_type(integration, record_type)
    tenant = integration.tenant
    rows = _validate(parsed)
    _reject_duplicates(rows)
    live = [row for row in rows if row.kind != Kind.REJECTED]

    remote_ids = RemoteId.objects.for_tenant(tenant).filter(record_type=record_type).order_by()
    source_rows = remote_ids.filter(connection=integration.source)
    target_rows = remote_ids.filter(connection=integration.target)
    by_source = {
        row.remote_id: row
        for row in _rows_by(source_rows, "remote_id", [r.source_id for r in live])
    }
    target_of_record = {
        row.record_id: row
        for row in _rows_by(target_rows, "record_id", [r.record_id for r in by_source.values()])
    }
    holders = {
        row.remote_id: row
        for row in _rows_by(target_rows, "remote_id", [r.target_id for r in live if r.target_id])
    }
    holder_source = {
        row.record_id: row.remote_id
        for row in _rows_by(source_rows, "record_id", [r.record_id for r in holders.values()])
    }

    for row in live:
        row.source_row = by_source.get(row.source_id)
        record_id = row.source_row.record_id if row.source_row else None
        row.target_row = target_of_record.get(record_id) if record_id else None
        if row.source_row and not row.source_ref:
            row.source_ref = row.source_row.remote_ref  # an empty ref keeps the current one
        if not row.target_id:
            if row.source_row and row.target_row is None:
                row.kind = Kind.UNCHANGED  # unlinked in the file and here
            else:
                _reject(
                    row,
                    "Target id is required."
                    if row.target_row is None
                    else f"Target id is empty but {row.source_id} is linked to "
                    f"{row.target_row.remote_id}; delete the reference on the References "
                    "page to unlink it.",
                )
            continue
        if not row.target_ref and row.target_row and row.target_row.remote_id == row.target_id:
            row.target_ref = row.target_row.remote_ref
        if row.target_row is None:
            row.kind = Kind.NEW
        elif row.target_changes or row.source_changes:
            row.kind = Kind.CHANGE
        else:
            row.kind = Kind.UNCHANGED

    # A target held by another record is a conflict, unless that record's line in this
    # file moves it to another target (a swap). Rejections can undo such a move, so repeat.
    while True:
        moving = {
            row.source_row.record_id
            for row in live
            if row.kind == Kind.CHANGE and row.before_target != row.target_id
        }
        rejected_now = 0
        for row in live:
            if row.kind not in (Kind.NEW, Kind.CHANGE):
                continue
            holder = holders.get(row.target_id)
            record_id = row.source_row.record_id if row.source_row else None
            if holder is None or holder.record_id == record_id or holder.record_id in moving:
                continue
            linked_from = holder_source.get(holder.record_id)
            _reject(
                row,
                f"Target {row.target_id} is already linked to source {linked_from}."
                if linked_from
                else f"Target {row.target_id} already belongs to a {record_type} that "
                f"{integration.source} does not know; see Suggested links.",
            )
            rejected_now += 1
        if not rejected_now:
            break
    return ImportPlan(integration, record_type, rows, parsed.ignored_columns)


def plan_text(integration, record_type: str, text: str) -> ImportPlan:
    return plan_import(integration, record_type, parse_csv(text))


# --- apply ------------------------------------------------------------------------------------


@dataclass
class Progress:
    phase: str
    done: int
    total: int


@dataclass
class ImportResult:
    batch: Batch
    counts: dict[str, int]

    @property
    def written(self) -> int:
        return self.counts[Kind.NEW] + self.counts[Kind.CHANGE]


def _remote_id(tenant, record_id, connection, record_type, remote_id, remote_ref) -> RemoteId:
    return RemoteId(
        tenant=tenant,
        record_id=record_id,
        connection=connection,
        record_type=record_type,
        remote_id=remote_id,
        remote_ref=remote_ref,
    )


def _change(tenant, batch, change, row: RemoteId) -> BatchChange:
    return BatchChange(
        tenant=tenant,
        batch=batch,
        change=change,
        record_id=row.record_id,
        connection_id=row.connection_id,
        record_type=row.record_type,
        remote_id=row.remote_id,
        remote_ref=row.remote_ref,
    )


def _planned_changes(writes: list[PlannedRow], source_id: int, target_id: int, created_ids):
    """The remote-id rows an apply removes and adds, and the existing records it touches.

    Shared by both writers. `created_ids` are the new records' ids, in the order of the
    writes that create one. Returns (removed, added, existing_records) with
    removed = (old_pk, record_id, connection_id, remote_id, remote_ref) and
    added = (record_id, connection_id, remote_id, remote_ref).
    """
    removed, added, existing_records = [], [], []
    creating = [row for row in writes if row.source_row is None]
    for row, record_id in zip(creating, created_ids, strict=True):
        added.append((record_id, source_id, row.source_id, row.source_ref))
        added.append((record_id, target_id, row.target_id, row.target_ref))
    for row in writes:
        if row.source_row is None:
            continue
        record_id = row.source_row.record_id
        existing_records.append(record_id)
        if row.source_changes:
            old = row.source_row
            removed.append((old.pk, record_id, source_id, old.remote_id, old.remote_ref))
            added.append((record_id, source_id, row.source_id, row.source_ref))
        if row.target_changes:
            if row.target_row is not None:
                old = row.target_row
                removed.append((old.pk, record_id, target_id, old.remote_id, old.remote_ref))
            added.append((record_id, target_id, row.target_id, row.target_ref))
    return removed, added, existing_records


def _write_orm(
    integration, record_type: str, writes: list[PlannedRow], batch, actor: Actor, now
) -> Iterator[Progress]:
    """Write the plan with the ORM (SQLite); returns (`yield from`) the created record ids."""
    tenant = integration.tenant
    connections = {
        integration.source_id: integration.source,
        integration.target_id: integration.target,
    }
    creating = [row for row in writes if row.source_row is None]
    total = len(writes) + len(creating)
    done = 0
    created_ids = []
    for chunk in _chunks(creating):
        records = Record.objects.bulk_create(
            [
                Record(
                    tenant=tenant,
                    record_type=record_type,
                    created_at=now,
                    last_modified=now,
                    last_modified_by=str(actor),
                    record_source=str(actor),
                )
                for _ in chunk
            ]
        )
        created_ids += [record.pk for record in records]
        done += len(chunk)
        yield Progress("Creating records", done, total)
    removed_rows, added_rows, existing_records = _planned_changes(
        writes, integration.source_id, integration.target_id, created_ids
    )
    removed = [
        _remote_id(tenant, record_id, connections[conn], record_type, remote_id, ref)
        for _, record_id, conn, remote_id, ref in removed_rows
    ]
    added = [
        _remote_id(tenant, record_id, connections[conn], record_type, remote_id, ref)
        for record_id, conn, remote_id, ref in added_rows
    ]
    old_pks = [old_pk for old_pk, *_ in removed_rows]
    try:
        # Old rows go first, so an id freed by one line can be taken by another (a swap).
        for chunk in _chunks(old_pks):
            RemoteId.objects.for_tenant(tenant).filter(pk__in=chunk).delete()
        BatchChange.objects.bulk_create(
            [_change(tenant, batch, BatchChange.Change.REMOVED, row) for row in removed],
            batch_size=CHUNK,
        )
        written = 0
        for chunk in _chunks(added):
            RemoteId.objects.bulk_create(chunk)
            BatchChange.objects.bulk_create(
                [_change(tenant, batch, BatchChange.Change.ADDED, row) for row in chunk]
            )
            written += len(chunk)
            yield Progress(
                "Writing references",
                min(total, done + round(written * len(writes) / max(len(added), 1))),
                total,
            )
    except IntegrityError as error:
        raise DomainError(
            "Another change to these references happened while importing; nothing was "
            "imported. Check the file again and retry.",
            code="conflict",
        ) from error
    for chunk in _chunks(sorted(set(existing_records))):
        Record.objects.for_tenant(tenant).filter(pk__in=chunk).update(
            last_modified=now, last_modified_by=str(actor), version=F("version") + 1
        )
    return created_ids


def _write_copy(
    integration, record_type: str, writes: list[PlannedRow], batch, actor: Actor, now
) -> Iterator[Progress]:
    """Write the plan on PostgreSQL (same rows as `_write_orm`); returns the created ids.

    Building half a million model instances was most of the time of a 100k-row import, so
    the rows go as tuples through COPY: new records straight into records_record (ids taken
    from its sequence first), the remote-id rows to remove and to add into a temporary table,
    then a few set-based statements: DELETE ... USING, INSERT ... SELECT into remote ids
    and batch changes (removed rows first, in plan order, as the ORM path writes them),
    and one UPDATE of the existing records.
    """
    tenant_id = integration.tenant_id
    source, target = integration.source_id, integration.target_id
    creating = [row for row in writes if row.source_row is None]
    total = len(writes) + len(creating)
    by = str(actor)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        created_ids = []
        if creating:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('records_record', 'id')) "
                "FROM generate_series(1, %s)",
                [len(creating)],
            )
            created_ids = sorted(value for (value,) in cursor.fetchall())
            columns = (
                "id, tenant_id, local_id, record_type, data, created_at, last_modified, "
                "last_modified_by, record_source, version"
            )
            with cursor.copy(f"COPY records_record ({columns}) FROM STDIN") as copy:
                for record_id in created_ids:
                    copy.write_row(
                        (record_id, tenant_id, new_hex_id(), record_type, "{}", now, now, by, by, 1)
                    )
            yield Progress("Creating records", len(creating), total)
        removed, added, existing_records = _planned_changes(writes, source, target, created_ids)
        cursor.execute(
            "CREATE TEMPORARY TABLE refdesk_import_rows (ord integer, change varchar(10), "
            "old_pk bigint, record_id bigint, connection_id bigint, remote_id text, "
            "remote_ref text) ON COMMIT DROP"
        )
        with cursor.copy(
            "COPY refdesk_import_rows (ord, change, old_pk, record_id, connection_id, "
            "remote_id, remote_ref) FROM STDIN"
        ) as copy:
            ord_ = 0
            for old_pk, record_id, connection_id, remote_id, remote_ref in removed:
                ord_ += 1
                copy.write_row(
                    (ord_, "removed", old_pk, record_id, connection_id, remote_id, remote_ref)
                )
            for record_id, connection_id, remote_id, remote_ref in added:
                ord_ += 1
                copy.write_row(
                    (ord_, "added", None, record_id, connection_id, remote_id, remote_ref)
                )
        cursor.execute("ANALYZE refdesk_import_rows")
        # Old rows go first, so an id freed by one line can be taken by another (a swap).
        cursor.execute(
            "DELETE FROM records_remoteid r USING refdesk_import_rows t "
            "WHERE t.change = 'removed' AND r.id = t.old_pk AND r.tenant_id = %s",
            [tenant_id],
        )
        cursor.execute(
            "INSERT INTO records_remoteid (tenant_id, record_id, connection_id, record_type, "
            "remote_id, remote_ref) SELECT %s, record_id, connection_id, %s, remote_id, "
            "remote_ref FROM refdesk_import_rows WHERE change = 'added' ORDER BY ord",
            [tenant_id, record_type],
        )
        cursor.execute(
            "INSERT INTO records_batchchange (tenant_id, batch_id, change, record_id, "
            "connection_id, record_type, remote_id, remote_ref) SELECT %s, %s, change, "
            "record_id, connection_id, %s, remote_id, remote_ref FROM refdesk_import_rows "
            "ORDER BY ord",
            [tenant_id, batch.pk, record_type],
        )
        cursor.execute("DROP TABLE refdesk_import_rows")
        yield Progress("Writing references", total, total)
        if existing_records:
            cursor.execute(
                "UPDATE records_record SET last_modified = %s, last_modified_by = %s, "
                "version = version + 1 WHERE tenant_id = %s AND id = ANY(%s)",
                [now, by, tenant_id, sorted(set(existing_records))],
            )
    return created_ids


def apply_steps(
    integration, record_type: str, text: str, actor: Actor, *, filename: str = "", upload=None
) -> Iterator[Progress | ImportResult]:
    """Plan the file again and write it in one transaction; yields Progress, then the result.

    Consume it to the end (`apply_import` does): leaving early rolls everything back.
    `upload` (an ImportUpload) is locked, refused if already applied, and marked applied.
    """
    tenant = integration.tenant
    with transaction.atomic():
        if upload is not None:
            upload = type(upload).objects.select_for_update().get(pk=upload.pk)
            if upload.batch_id:
                raise DomainError("This file was already imported.", code="applied")
        yield Progress("Checking the file", 0, 0)
        plan = plan_text(integration, record_type, text)
        counts = plan.counts
        writes = plan.to_write
        now = timezone.now()
        batch = Batch.objects.create(
            tenant=tenant,
            kind=Batch.Kind.IMPORT,
            actor=str(actor),
            integration=integration,
            record_type=record_type,
            created_at=now,
            row_count=len(writes),
            description=f"Imported {len(writes)} {record_type} references"
            + (f" from {filename}" if filename else ""),
        )
        try:
            if connection.vendor == "postgresql":
                created_ids = yield from _write_copy(
                    integration, record_type, writes, batch, actor, now
                )
            else:
                created_ids = yield from _write_orm(
                    integration, record_type, writes, batch, actor, now
                )
        except IntegrityError as error:
            raise DomainError(
                "Another change to these references happened while importing; nothing was "
                "imported. Check the file again and retry.",
                code="conflict",
            ) from error
        total = len(writes) + sum(1 for row in writes if row.source_row is None)
        batch.details = {"created_record_ids": created_ids, "filename": filename}
        batch.save(update_fields=["details"])
        summary = (
            f"Imported {filename or 'a CSV file'}: {counts[Kind.NEW]} new, "
            f"{counts[Kind.CHANGE]} changed, {counts[Kind.UNCHANGED]} unchanged, "
            f"{counts[Kind.REJECTED]} rejected"
        )
        write_audit(
            tenant,
            actor,
            AuditEntry.Action.IMPORT,
            record_type=record_type,
            connection=integration.target,
            integration=integration,
            batch=batch,
            after=counts,
            summary=summary,
            at=now,
        )
        if upload is not None:
            upload.batch = batch
            upload.save(update_fields=["batch"])
        yield Progress("Done", total, total)
        yield ImportResult(batch, counts)


def apply_import(integration, record_type: str, text: str, actor: Actor, **kwargs) -> ImportResult:
    result = None
    for step in apply_steps(integration, record_type, text, actor, **kwargs):
        if isinstance(step, ImportResult):
            result = step
    return result

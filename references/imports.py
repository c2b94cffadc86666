"""CSV import of references: parse, plan (the dry run), apply as one restorable batch.

`manage.py import_references` holds its file in memory:

    parsed = parse_csv(decode_csv(data))          # file-level errors raise ImportFileError
    plan = plan_import(integration, record_type, parsed)      # reads only, a few IN queries
    result = apply_import(integration, record_type, text, actor)   # plans again, then writes

The upload pages never do: import_uploads.py streams the file into ImportLine rows, plans
them in chunks and keeps each line's outcome for the preview (read_csv and lines_change_set
are the shared parts).

Apply is one transaction and one Batch: every remote-id row it replaces is recorded as
`removed`, every row it writes as `added`, so `restore_batch` undoes it; records it had to
create are listed in `batch.details` and deleted again by the restore.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import NamedTuple

from django.db import transaction

from common.csvfile import unescape_cell  # the export's escape, read back
from common.errors import DomainError
from records import changes
from records.audit import Actor
from records.models import AuditEntry, Batch

from . import uploads
from .services import reference_change_set
from .uploads import ImportFileError, max_upload_bytes  # noqa: F401 (their home before)

REQUIRED_COLUMNS = ("source_id", "target_id")
OPTIONAL_COLUMNS = ("source_ref", "target_ref")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
MAX_HEADER_LENGTH = 1000


# --- reading the file ---------------------------------------------------------------------


def decode_csv(data: bytes) -> str:
    """UTF-8 text with or without a BOM (Excel's "CSV UTF-8"); anything else is refused."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise uploads.not_utf8(data, error, data.count(b"\n", 0, error.start) + 1) from None
    if "\x00" in text:
        raise uploads.nul_bytes()
    if not text.strip():
        raise ImportFileError("The file is empty.", code="empty")
    return text


class FileLine(NamedTuple):
    """One line of the file as read: a row's values, or why it is not a row (`problem`)."""

    line: int
    source_id: str = ""
    target_id: str = ""
    source_ref: str = ""
    target_ref: str = ""
    problem: str = ""


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

    def lines(self) -> list[FileLine]:
        return [
            FileLine(row.line, row.source_id, row.target_id, row.source_ref, row.target_ref)
            for row in self.rows
        ] + [FileLine(line, problem=reason) for line, reason in self.malformed]


@dataclass
class CsvHeader:
    delimiter: str
    columns: list[str]
    ignored_columns: list[str]
    index: dict[str, int]  # column -> position
    width: int


def _header_name(value: str) -> str:
    return value.strip().strip("\ufeff").lower().replace(" ", "_").replace("-", "_")


def _read_header(reader, first_line: str, delimiter: str) -> CsvHeader:
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
    return CsvHeader(
        delimiter,
        [name for name in names if name in COLUMNS],
        [name for name in names if name and name not in COLUMNS],
        {name: names.index(name) for name in COLUMNS if name in names},
        len(names),
    )


def read_csv(lines: Iterator[str]) -> tuple[CsvHeader, Iterator[FileLine]]:
    """The header of a references CSV (ImportFileError when it is wrong) and its lines, read
    as they are consumed (a bad line raises ImportFileError then)."""
    delimiter, body, offset = uploads.sniff_delimiter(lines)
    first = next(body, "")
    first_line = first[: MAX_HEADER_LENGTH + 1].partition("\n")[0]
    reader = csv.reader(chain([first], body), delimiter=delimiter)
    header = _read_header(reader, first_line, delimiter)
    return header, _file_lines(reader, header, offset)


def _file_lines(reader, header: CsvHeader, offset: int) -> Iterator[FileLine]:
    """The lines after the header. Runs once per line of a million-line file: kept lean."""
    other = ";" if header.delimiter == "," else ","
    width = header.width
    # A column the header lacks reads the empty cell appended to each row (position -1).
    source, target, source_ref, target_ref = (header.index.get(name, -1) for name in COLUMNS)
    previous_end = reader.line_num
    try:
        for values in reader:
            line = previous_end + 1 + offset
            previous_end = reader.line_num
            if not "".join(values).strip():
                continue  # blank line, or Excel's ",,," for an empty row
            if len(values) > width and not "".join(values[width:]).strip():
                values = values[:width]
            if len(values) == width:
                values.append("")
                yield FileLine(
                    line,
                    _cell(values[source]),
                    _cell(values[target]),
                    _cell(values[source_ref]),
                    _cell(values[target_ref]),
                )
                continue
            if len(values) < width and any(other in value for value in values):
                raise ImportFileError(
                    f"Line {line} is separated by '{other}' but the header uses "
                    f"'{header.delimiter}'. Use one separator throughout the file.",
                    code="delimiter",
                )
            problem = f"Expected {width} columns like the header, found {len(values)}."
            yield FileLine(line, problem=problem)
    except csv.Error as error:
        raise ImportFileError(
            f"Line {previous_end + 1 + offset} cannot be read as CSV: {error}.", code="csv"
        ) from None


def _cell(value: str) -> str:
    value = value.strip()
    return unescape_cell(value) if value[:1] == "'" else value


def parse_csv(text: str) -> ParsedFile:
    """Rows of a references CSV held in memory (manage.py import_references), or
    ImportFileError naming what is wrong with the file."""
    header, lines = read_csv(iter(io.StringIO(text, newline="")))
    rows, malformed = [], []
    for line in lines:
        if line.problem:
            malformed.append((line.line, line.problem))
        else:
            rows.append(ParsedRow(*line[:5]))
    return ParsedFile(header.delimiter, header.columns, header.ignored_columns, rows, malformed)


# --- the plan (dry run): the engine's plan, shown line by line -----------------------------


class Kind:
    NEW = "new"
    CHANGE = "changed"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


# The engine's outcomes in the words of the import preview.
KIND_OF_OUTCOME = {
    changes.NEW: Kind.NEW,
    changes.CHANGED: Kind.CHANGE,
    changes.UNCHANGED: Kind.UNCHANGED,
    changes.REJECTED: Kind.REJECTED,
}


@dataclass(frozen=True)
class Existing:
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


def import_change_set(integration, record_type: str, parsed: ParsedFile, actor=None, **options):
    return lines_change_set(integration, record_type, parsed.lines(), actor, **options)


def lines_change_set(integration, record_type: str, lines, actor=None, **options):
    """One LINK per row: the record the source knows as X gets target Y (or is created).

    A row with an empty target means "not linked" (what export writes); a line that is not a
    row is rejected with its problem.
    """
    return reference_change_set(
        integration,
        record_type,
        actor,
        Batch.Kind.IMPORT,
        [
            changes.Change(changes.Action.LINK, line=line.line, problem=line.problem)
            if line.problem
            else changes.Change(
                changes.Action.LINK,
                line=line.line,
                source_id=line.source_id,
                source_ref=line.source_ref,
                target_id=line.target_id,
                target_ref=line.target_ref,
            )
            for line in lines
        ],
        relink=True,
        audit_action=AuditEntry.Action.IMPORT,
        audit_each=False,
        **options,
    )


def _preview_rows(integration, result: changes.Plan) -> list[PlannedRow]:
    source, target = integration.source_id, integration.target_id
    rows = []
    for line in result.lines:
        key = line.record_key
        here_source = result.current.get((key, source)) if isinstance(key, int) else None
        here_target = result.current.get((key, target)) if isinstance(key, int) else None
        rows.append(
            PlannedRow(
                line=line.line,
                source_id=line.source_id,
                target_id=line.target_id,
                source_ref=line.source_ref,
                target_ref=line.target_ref,
                kind=KIND_OF_OUTCOME[line.outcome],
                reason=line.reason,
                source_row=Existing(here_source.remote_id, here_source.remote_ref)
                if here_source
                else None,
                target_row=Existing(here_target.remote_id, here_target.remote_ref)
                if here_target
                else None,
            )
        )
    rows.sort(key=lambda row: row.line)
    return rows


def plan_import(integration, record_type: str, parsed: ParsedFile) -> ImportPlan:
    """Classify every row: new link, change, unchanged, or rejected with the reason.

    The engine's plan (records.changes): a few IN queries per 2,000 ids; writes nothing.
    """
    result = changes.plan(import_change_set(integration, record_type, parsed))
    return ImportPlan(
        integration,
        record_type,
        _preview_rows(integration, result),
        parsed.ignored_columns,
    )


def plan_text(integration, record_type: str, text: str) -> ImportPlan:
    return plan_import(integration, record_type, parse_csv(text))


# --- apply ------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    batch: Batch | None
    counts: dict[str, int]
    # Why the apply refused each line it refused, by line number: the result page keeps them.
    rejected: dict[int, str] = field(default_factory=dict)

    @property
    def written(self) -> int:
        return self.counts[Kind.NEW] + self.counts[Kind.CHANGE]


def apply_import(integration, record_type: str, text: str, actor: Actor, **options):
    """Plan a file held in memory again and write what it accepts (see apply_lines)."""
    return apply_lines(integration, record_type, parse_csv(text).lines(), actor, **options)


def apply_lines(
    integration,
    record_type: str,
    lines,
    actor: Actor,
    *,
    filename: str = "",
    upload=None,
    progress=None,
) -> ImportResult:
    """Plan the lines again and write what they accept in one transaction, as one batch.

    `upload` (an ImportUpload) is locked, refused if already applied, and marked applied.
    `lines` may be a callable returning them, called once the upload is locked.
    """
    with transaction.atomic():
        if upload is not None:
            upload = (
                type(upload)
                .objects.for_tenant(upload.tenant_id)
                .select_for_update()
                .get(pk=upload.pk)
            )
            if upload.batch_id:
                raise DomainError("This file was already imported.", code="applied")
        change_set = lines_change_set(
            integration,
            record_type,
            lines() if callable(lines) else lines,
            actor,
            description=f"Imported {{written}} {record_type} references"
            + (f" from {filename}" if filename else ""),
            details={"filename": filename},
        )
        applied = changes.apply(change_set, progress=progress)
        if upload is not None and applied.batch is not None:
            upload.batch = applied.batch
            upload.save(update_fields=["batch"])
    counts = {KIND_OF_OUTCOME[key]: applied.counts[key] for key in KIND_OF_OUTCOME}
    rejected = {line.line: line.reason for line in applied.plan.lines if line.rejected}
    return ImportResult(applied.batch, counts, rejected)

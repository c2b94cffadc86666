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
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from common.csvfile import unescape_cell  # the export's escape, read back
from common.errors import DomainError
from records import changes
from records.audit import Actor
from records.models import AuditEntry, Batch

from .services import reference_change_set

REQUIRED_COLUMNS = ("source_id", "target_id")
OPTIONAL_COLUMNS = ("source_ref", "target_ref")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
MAX_HEADER_LENGTH = 1000


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
                    **{
                        name: unescape_cell(values[position].strip())
                        for name, position in index.items()
                    },
                )
            )
    except csv.Error as error:
        raise ImportFileError(
            f"Line {previous_end + 1 + offset} cannot be read as CSV: {error}.", code="csv"
        ) from None
    return ParsedFile(delimiter, [n for n in names if n in COLUMNS], ignored, rows, malformed)


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
    """One LINK per row: the record the source knows as X gets target Y (or is created).

    A row with an empty target means "not linked" (what export writes).
    """
    return reference_change_set(
        integration,
        record_type,
        actor,
        Batch.Kind.IMPORT,
        [
            changes.Change(
                changes.Action.LINK,
                line=row.line,
                source_id=row.source_id,
                source_ref=row.source_ref,
                target_id=row.target_id,
                target_ref=row.target_ref,
            )
            for row in parsed.rows
        ]
        + [
            changes.Change(changes.Action.LINK, line=line, problem=reason)
            for line, reason in parsed.malformed
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

    @property
    def written(self) -> int:
        return self.counts[Kind.NEW] + self.counts[Kind.CHANGE]


def apply_import(
    integration,
    record_type: str,
    text: str,
    actor: Actor,
    *,
    filename: str = "",
    upload=None,
    progress=None,
) -> ImportResult:
    """Plan the file again and write what it accepts in one transaction, as one batch.

    `upload` (an ImportUpload) is locked, refused if already applied, and marked applied.
    """
    with transaction.atomic():
        if upload is not None:
            upload = type(upload).objects.select_for_update().get(pk=upload.pk)
            if upload.batch_id:
                raise DomainError("This file was already imported.", code="applied")
        change_set = import_change_set(
            integration,
            record_type,
            parse_csv(text),
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
    return ImportResult(applied.batch, counts)

"""Uploaded CSV files in bounded memory: checked, decoded and read line by line, and their rows
written into a line table in chunks (COPY on PostgreSQL), never held whole in a request.

    with opened_text(uploaded) as lines:          # ImportFileError for size and encoding
        delimiter, lines, offset = sniff_delimiter(lines)
        copy_rows(ImportLine, columns, rows)       # rows: any iterable of tuples
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain, islice

from django.conf import settings
from django.db import connection

from common.errors import DomainError

CHUNK = 5000  # rows per bulk insert where COPY is not available


class ImportFileError(DomainError):
    """The file as a whole cannot be read: nothing of it is planned or written."""


def max_upload_bytes() -> int:
    return getattr(settings, "REFDESK_IMPORT_MAX_BYTES", 20 * 1024 * 1024)


def check_size(uploaded) -> None:
    limit = max_upload_bytes()
    if uploaded.size > limit:
        raise ImportFileError(
            f"The file is {uploaded.size / 1_048_576:.1f} MB; at most "
            f"{limit / 1_048_576:.0f} MB can be uploaded here. Split it into smaller files, "
            "or ask your administrator to run manage.py import_references for very large files.",
            code="too_large",
        )


def not_utf8(data: bytes, error: UnicodeDecodeError, line: int) -> ImportFileError:
    return ImportFileError(
        f"The file is not UTF-8 text (line {line} has the byte 0x{data[error.start]:02X}). "
        'In Excel use "Save as" > "CSV UTF-8 (Comma delimited) (*.csv)".',
        code="encoding",
    )


def nul_bytes() -> ImportFileError:
    return ImportFileError(
        "The file contains NUL bytes: it is not a CSV text file.", code="encoding"
    )


def check_encoding(binary) -> None:
    """One pass over the bytes, a line at a time: UTF-8 (a BOM allowed), no NUL, not blank.

    The same errors in the same order as decoding the whole file, without holding it: a line
    break byte is never part of a multi-byte character, so each line decodes on its own.
    """
    binary.seek(0)
    blank, nul = True, False
    for number, data in enumerate(binary, start=1):
        if number == 1 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise not_utf8(data, error, number) from None
        nul = nul or "\x00" in text
        blank = blank and not text.strip()
    if nul:
        raise nul_bytes()
    if blank:
        raise ImportFileError("The file is empty.", code="empty")


@contextmanager
def opened_text(uploaded) -> Iterator[Iterator[str]]:
    """The lines of a checked upload as text (BOM removed), read from its file as they go."""
    check_size(uploaded)
    binary = uploaded.file
    check_encoding(binary)
    binary.seek(0)
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        yield iter(text)
    finally:
        text.detach()  # the upload handler closes its own file


def sniff_delimiter(lines: Iterator[str]) -> tuple[str, Iterator[str], int]:
    """The separator from the header line (or Excel's `sep=;` line above it).

    Returns the separator, the lines from the header on, and how many lines were consumed
    before it (1 after a `sep=` line), for line numbers as the file counts them.
    """
    first = next(lines, "")
    head = first.rstrip("\n").rstrip("\r")
    if head.lower().startswith("sep=") and len(head) == 5 and head[4] in ",;":
        return head[4], lines, 1
    commas, semicolons = head.count(","), head.count(";")
    if commas and semicolons:
        raise ImportFileError(
            "The header line mixes commas and semicolons. Use one separator throughout "
            "(a comma or a semicolon), e.g. source_id,target_id.",
            code="delimiter",
        )
    return (";" if semicolons else ","), chain([first], lines), 0


def copy_rows(model, columns: list[str], rows: Iterable[tuple]) -> int:
    """Insert rows (tuples in the order of `columns`, by field attname) as they come: COPY on
    PostgreSQL, bulk inserts of CHUNK rows elsewhere. Returns how many went in."""
    count = 0
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(model._meta.db_table)
        names = ", ".join(connection.ops.quote_name(column) for column in columns)
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    rows = iter(rows)
    while chunk := list(islice(rows, CHUNK)):
        model.objects.bulk_create(model(**dict(zip(columns, row, strict=True))) for row in chunk)
        count += len(chunk)
    return count

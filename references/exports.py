"""CSV export of references in the import format (export -> import is all "unchanged").

Streamed: rows come from `.iterator(chunk_size=...)` and are written line by line, so memory
stays flat at a million rows.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator

from .filters import ReferenceFilterSet
from .imports import COLUMNS, escape_cell

CHUNK_SIZE = 5000


def export_rows(integration, record_type: str, params) -> Iterator[tuple]:
    """(source_id, target_id, source_ref, target_ref) of exactly what the References page shows
    for these query parameters: the page's own FilterSet and query (references.filters)."""
    rows = ReferenceFilterSet(params, integration=integration, record_type=record_type).qs
    return rows.values_list(
        "remote_id", "target_remote_id", "remote_ref", "target_remote_ref"
    ).iterator(chunk_size=CHUNK_SIZE)


class _Line:
    """csv.writer target that hands back each written line."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[tuple]) -> Iterator[bytes]:
    """A UTF-8 BOM (so Excel reads it as UTF-8), the header, then one line per row; a cell that
    a spreadsheet would run as a formula is written as text (imports.escape_cell)."""
    writer = csv.writer(_Line(), lineterminator="\r\n")
    yield codecs.BOM_UTF8 + writer.writerow(COLUMNS).encode()
    buffer = []
    for source_id, target_id, source_ref, target_ref in rows:
        buffer.append(
            writer.writerow(
                (
                    escape_cell(source_id),
                    escape_cell(target_id or ""),
                    escape_cell(source_ref),
                    escape_cell(target_ref or ""),
                )
            )
        )
        if len(buffer) >= 1000:
            yield "".join(buffer).encode()
            buffer = []
    if buffer:
        yield "".join(buffer).encode()

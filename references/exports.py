"""CSV export of references in the import format (export -> import is all "unchanged").

Streamed: rows come from `.iterator(chunk_size=...)` and are written line by line by the one CSV
writer (common.csvfile: every cell spreadsheet-safe), so memory stays flat at a million rows.
"""

from __future__ import annotations

from collections.abc import Iterator

from .filters import ReferenceFilterSet

CHUNK_SIZE = 5000


def export_rows(integration, record_type: str, params) -> Iterator[tuple]:
    """(source_id, target_id, source_ref, target_ref) of exactly what the References page shows
    for these query parameters: the page's own FilterSet and query (references.filters)."""
    rows = ReferenceFilterSet(params, integration=integration, record_type=record_type).qs
    return rows.values_list(
        "remote_id", "target_remote_id", "remote_ref", "target_remote_ref"
    ).iterator(chunk_size=CHUNK_SIZE)

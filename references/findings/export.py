"""A finding's whole list as CSV, with its evidence: the columns its class declares, streamed
a thousand rows at a time, cells a spreadsheet would run as a formula written as text."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from django.http import StreamingHttpResponse
from django.utils import timezone

from ..imports import escape_cell
from .base import Finding

CHUNK = 1000


def finding_csv(finding: Finding, entity: str) -> StreamingHttpResponse:
    """The download of one finding of one entity type (`entity`: its URL slug)."""
    response = StreamingHttpResponse(finding_lines(finding), content_type="text/csv")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = (
        f'attachment; filename="health-{finding.name}-{entity}-{stamp}.csv"'
    )
    response["Cache-Control"] = "no-store"
    return response


def finding_lines(finding: Finding) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(finding.csv_header())
    rows = finding.rows()
    for start in range(0, 10**9, CHUNK):
        chunk = list(rows[start : start + CHUNK])
        if not chunk:
            break
        for item in finding.evidence(chunk):
            writer.writerow([escape_cell(str(value)) for value in finding.csv_values(item)])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    if out.getvalue():
        yield out.getvalue()

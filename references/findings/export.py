"""A finding's whole list as CSV, with its evidence: the columns its class declares, streamed
a thousand rows at a time through the one CSV writer (common.csvfile: every cell, header
included, escaped; a fixed download name; no-store)."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import StreamingHttpResponse

from common.csvfile import csv_response

from .base import Finding

CHUNK = 1000


def finding_csv(finding: Finding, entity: str) -> StreamingHttpResponse:
    """The download of one finding of one entity type (`entity`: its URL slug)."""
    return csv_response(
        finding.csv_header(), finding_values(finding), name=("health", finding.name, entity)
    )


def finding_values(finding: Finding) -> Iterator[list]:
    rows = finding.rows()
    for start in range(0, 10**9, CHUNK):
        chunk = list(rows[start : start + CHUNK])
        if not chunk:
            break
        for item in finding.evidence(chunk):
            yield finding.csv_values(item)

"""The one CSV writer of every export (References, Health findings, the reconcile sample).

Every cell, header cells included, goes through `escape_cell`: a spreadsheet opening the file
runs a cell that starts with a formula character, and Excel and LibreOffice both skip leading
whitespace and invisible (Unicode format, category Cf) characters before they look. Such a cell
is written with a leading `'`, which every spreadsheet shows as text; the import reads it back
(`unescape_cell`), so an export imports as "unchanged". A negative number (`-5`) is escaped
too: `-2+3` and `-1+cmd|...` start the same way, and a spreadsheet shows `'-5` as the text
`-5`, still readable (only not summed).

The download's name is made of fixed words and validated slugs only (`attachment_name`), never
of a request parameter or a name a user typed, and no export is kept by a cache (no-store).
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse
from django.utils import timezone

# ASCII and fullwidth forms: some spreadsheets fold fullwidth characters before parsing.
FORMULA_CHARACTERS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
# Control characters a spreadsheet reads as the start of a formula-bearing cell.
FORMULA_CONTROLS = frozenset("\t\r")
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
LINES_PER_CHUNK = 1000
SLUG_PART = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def is_invisible(character: str) -> bool:
    return character.isspace() or unicodedata.category(character) in INVISIBLE_CATEGORIES


def needs_escape(value: str) -> bool:
    """True when a spreadsheet could read `value` as a formula (or it starts with the `'`
    the escape itself adds, so that escaping stays reversible)."""
    if value.startswith("'"):
        return True
    for character in value:
        if character in FORMULA_CONTROLS:
            return True
        if not is_invisible(character):
            return character in FORMULA_CHARACTERS
    return False


def escape_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if needs_escape(text) else text


def unescape_cell(value: str) -> str:
    """The inverse of escape_cell (a human's `'5001` stays as typed)."""
    if value.startswith("'") and needs_escape(value[1:]):
        return value[1:]
    return value


class _Line:
    """csv.writer target that hands back each written line."""

    def write(self, value: str) -> str:
        return value


def csv_chunks(header: Sequence, rows: Iterable[Sequence], *, bom: bool = False) -> Iterator[bytes]:
    """The header then every row, each cell escaped, as UTF-8 in chunks of lines: memory
    stays flat however many rows `rows` yields. `bom` for files Excel must read as UTF-8."""
    writer = csv.writer(_Line(), lineterminator="\r\n")
    first = writer.writerow([escape_cell(cell) for cell in header]).encode()
    yield (codecs.BOM_UTF8 + first) if bom else first
    buffer = []
    for row in rows:
        buffer.append(writer.writerow([escape_cell(cell) for cell in row]))
        if len(buffer) >= LINES_PER_CHUNK:
            yield "".join(buffer).encode()
            buffer = []
    if buffer:
        yield "".join(buffer).encode()


def attachment_name(*parts: str) -> str:
    """`health-lost-orders-20261203-1138.csv`: each part a lowercase slug that the caller took
    from a fixed set (a finding, an entity slug, a side), never text from the request."""
    for part in parts:
        if not SLUG_PART.fullmatch(part):
            raise ValueError(f"{part!r} cannot be part of a download's name.")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return "-".join((*parts, stamp)) + ".csv"


def csv_response(
    header: Sequence, rows: Iterable[Sequence], *, name: Sequence[str], bom: bool = False
) -> StreamingHttpResponse:
    """The one way an export answers: streamed, every cell escaped, a fixed file name
    (`attachment_name(*name)`), and never kept by a browser or proxy cache."""
    response = StreamingHttpResponse(csv_chunks(header, rows, bom=bom), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{attachment_name(*name)}"'
    response["Cache-Control"] = "no-store"
    return response

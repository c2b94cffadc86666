"""Every CSV export, fed the same hostile values, writes no cell a spreadsheet would run.

The values go in the way real ones do (the engine, a sync writing its own ids, a connection
renamed by an admin); each export is then downloaded through HTTP and parsed as a spreadsheet
would read it: after leading whitespace and invisible characters, no cell may start with a
formula character. The download's name is fixed and no export may be cached.
"""

import csv
import io
import re
import unicodedata

import pytest

from references.services import ReferenceInput, add_reference, delete_all_references

from ..references.test_health import erp_only, shop_order, url

pytestmark = pytest.mark.django_db

HOSTILE = [
    "=1+1",
    "+46 8 123",
    "-2+3",
    "@SUM(A1)",
    '=HYPERLINK("http://evil.example","x")',
    "\u200b=1+1",  # zero-width space
    "\ufeff@SUM(A1)",  # byte order mark
    "\u2060+1",  # word joiner
    "\u200e-2+3",  # left-to-right mark
    "\u00ad=1",  # soft hyphen
    "\u200b\u00a0=1",  # invisible, then a no-break space
    "\uff1d1+1",  # fullwidth equals sign
    "'=1",
]
EVIL_NAME = '\u200b=HYPERLINK("http://evil.example","Shopify")'
FORMULA_STARTS = "=+-@\uff1d\uff0b\uff0d\uff20"


def runs_as_formula(cell: str) -> bool:
    """How a spreadsheet reads a cell: tab or CR anywhere in the leading run of whitespace and
    invisible characters, or a formula character right after it."""
    for character in cell:
        if character in "\t\r":
            return True
        if character.isspace() or unicodedata.category(character) in ("Cc", "Cf"):
            continue
        return character in FORMULA_STARTS
    return False


def parsed(response) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    assert response["Cache-Control"] == "no-store"
    assert re.fullmatch(r'attachment; filename="[a-z0-9-]+\.csv"', response["Content-Disposition"])
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def formula_cells(lines) -> list[str]:
    return [cell for line in lines for cell in line if runs_as_formula(cell)]


def escaped_hostile_cells(lines) -> int:
    """How many cells hold a hostile value (with a number after it), escaped: so the export
    really had them to write."""
    escaped = tuple("'" + value for value in HOSTILE)
    return sum(1 for line in lines for cell in line if cell.startswith(escaped))


@pytest.fixture
def hostile(world):
    """The hostile values as source and target ids and refs, linked, lost and duplicated,
    on connections whose names are formulas."""
    world.shop.name = EVIL_NAME
    world.shop.save()
    world.erp.name = "@" + EVIL_NAME
    world.erp.save()
    for number, value in enumerate(HOSTILE):
        lost = ReferenceInput(f"{value}{number}", f"{value}{number}", value, value)
        add_reference(world.integration, "order", lost, world.actor)
    delete_all_references(world.integration, "order", world.actor)  # the lost links
    for number, value in enumerate(HOSTILE):
        linked = ReferenceInput(f"{value}{100 + number}", f"{value}{100 + number}", value, value)
        add_reference(world.integration, "order", linked, world.actor)
        # A Shopify order and a Fortnox-only one with the same order number: duplicates.
        shop_order(world, f"{value}{200 + number}", value, ref=value)
        erp_only(world, f"{value}{300 + number}", value, ref=value)
    return world


def test_the_references_export_escapes_every_hostile_cell(admin_client, hostile):
    lines = parsed(admin_client.get(url(hostile, "export")))

    assert formula_cells(lines) == []
    assert escaped_hostile_cells(lines) >= 4 * len(HOSTILE)


@pytest.mark.parametrize("finding", ["lost", "duplicates", "twins", "reused"])
def test_every_health_export_escapes_its_header_and_cells(admin_client, hostile, finding):
    lines = parsed(admin_client.get(url(hostile, "health-export") + f"?finding={finding}"))

    assert formula_cells(lines) == []
    if finding == "lost":
        assert lines[0][0] == "'" + EVIL_NAME + " id"
        assert escaped_hostile_cells(lines) >= 4 * len(HOSTILE)
    if finding == "duplicates":
        assert escaped_hostile_cells(lines) >= 2 * len(HOSTILE)


@pytest.mark.parametrize("side", ["source", "target"])
def test_the_reconcile_sample_escapes_every_hostile_cell(admin_client, hostile, side):
    lines = parsed(admin_client.get(url(hostile, "reconcile-sample") + f"?side={side}"))

    assert formula_cells(lines) == []
    assert escaped_hostile_cells(lines) >= len(HOSTILE) - 3  # a few are left out: gone


@pytest.mark.parametrize("side", ['x.bat";x="', "a\r\nSet-Cookie: x=1", "../../etc", "é"])
def test_the_sample_names_its_file_from_fixed_words_not_the_parameter(admin_client, world, side):
    response = admin_client.get(url(world, "reconcile-sample"), {"side": side})

    lines = parsed(response)
    assert response["Content-Disposition"].startswith('attachment; filename="sample-target-')
    assert lines[0] == ["Id", "Reference", "OrderNumber"]  # the match key is a column too

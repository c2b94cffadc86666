"""The one CSV writer's escape: reversible, and nothing it writes runs as a formula."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.csvfile import attachment_name, escape_cell, unescape_cell

from ..security.test_hostile_exports import HOSTILE, runs_as_formula

cells = st.text(
    alphabet=st.one_of(
        st.sampled_from("=+-@'\t\r\n \u00a0\u200b\ufeff\u2060\u200e\u00ad\uff1d0aZ"),
        st.characters(),
    ),
    max_size=12,
)


@given(cells)
def test_escaping_is_undone_by_the_import_and_never_leaves_a_formula(value):
    assert unescape_cell(escape_cell(value)) == value
    assert not runs_as_formula(escape_cell(value))


@pytest.mark.parametrize("value", HOSTILE)
def test_every_hostile_value_is_written_as_text(value):
    assert escape_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["5001", "INV 12", "Ünïcode", "a=b", "", "12.50", "x-1"])
def test_ordinary_values_are_written_as_they_are(value):
    assert escape_cell(value) == value


def test_a_typed_apostrophe_stays_as_typed():
    assert unescape_cell("'5001") == "'5001"


@pytest.mark.parametrize("part", ['x.bat";x="', "a\nb", "../etc", "Orders", "", "é"])
def test_a_download_name_takes_no_free_text(part):
    with pytest.raises(ValueError):
        attachment_name("sample", part)

"""The delta feed's cursor: opaque, read back exactly, and a cursor of the old form still reads."""

import base64
from datetime import UTC, datetime

import pytest

from common.errors import InvalidValue
from common.paging import FeedPosition, decode_feed_cursor, encode_feed_cursor

LOCAL_ID = "0123456789abcdef0123456789abcdef"


def test_a_position_by_transaction_reads_back_as_it_was():
    position = FeedPosition(transaction=8_589_934_593, row_id=42)
    assert decode_feed_cursor(encode_feed_cursor(position)) == position


def test_a_position_by_time_reads_back_as_it_was():
    position = FeedPosition(modified=datetime(2025, 3, 1, 12, 0, tzinfo=UTC), local_id=LOCAL_ID)
    assert decode_feed_cursor(encode_feed_cursor(position)) == position


def test_a_cursor_given_before_the_feed_knew_transactions_still_reads():
    old = base64.urlsafe_b64encode(f"2025-03-01T12:00:00+00:00|{LOCAL_ID}".encode()).decode()
    assert decode_feed_cursor(old.rstrip("=")).local_id == LOCAL_ID


@pytest.mark.parametrize(
    "raw", ["x|12|", "x|-1|3", "x|1|2|3", "x|²|3", "x|1|99999999999999999999", "2025-03-01|abc", ""]
)
def test_anything_else_is_refused_on_the_cursor_field(raw):
    cursor = base64.urlsafe_b64encode(raw.encode()).decode()
    with pytest.raises(InvalidValue) as refused:
        decode_feed_cursor(cursor)
    assert refused.value.field == "cursor"

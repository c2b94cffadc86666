"""Numbers from a URL or a form (page, per_page, row, batch and job ids), parsed one way.

`int()` alone is not enough for text from a request: `"²".isdigit()` is true but `int("²")`
fails, `int("٣")` is 3 and `int("1_0")` is 10, thousands of digits cost quadratic time and over
4,300 raise, and a number past the database's bigint fails in the query (a 500 every time).
Here a number is plain ASCII digits, at least 1 and at most `maximum`; anything else is None,
which the caller names on the page or answers with a 404.
"""

from __future__ import annotations

MAX_DATABASE_ID = 2**63 - 1  # the largest bigint primary key
_MAX_DIGITS = len(str(MAX_DATABASE_ID))


def parse_number(value, *, maximum: int = MAX_DATABASE_ID, clamp: bool = False) -> int | None:
    """`value` as a whole number in 1..maximum, or None. With `clamp`, plain digits above
    `maximum` give `maximum` (a page number past any list: the page says it is past the end)."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    if len(value) > max(_MAX_DIGITS, len(str(maximum))):  # never int() thousands of digits
        return maximum if clamp else None
    number = int(value)
    if number > maximum:
        return maximum if clamp else None
    return number if number >= 1 else None


def shown(value: str, limit: int = 20) -> str:
    """A value a request sent, shortened for a message that names it."""
    return value if len(value) <= limit else value[:limit] + "…"

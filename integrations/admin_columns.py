"""Narrow changelist columns for the Django admin.

Beside the admin's sidebar and the filters a changelist has about 630 px at a 1280 px window,
so long values would push the table into a horizontal scrollbar. These show a short form and
keep the whole value in a `title` (hover), and the change page shows it in full. An empty
value is None, which the admin shows as its "-".
"""

from __future__ import annotations

import re

from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timezone import localtime


def short_id(value: str | None, length: int = 8):
    """A 32-hex id as its first characters: `7fa8aecb…`, the whole id on hover."""
    if not value:
        return None
    if len(value) <= length + 1:
        return value
    return format_html('<abbr title="{}">{}…</abbr>', value, value[:length])


HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
# A word this long may break anywhere (static/css/admin.css: `.long-text`); shorter ones never do.
LONG_WORD = re.compile(r"\S{21,}")


def short_text(value: str | None, length: int):
    """Text with its 32-hex ids shortened (`c55f38ca…`), cut at `length` characters, the whole
    text on hover."""
    if not value:
        return None
    text = Truncator(HEX_ID.sub(lambda match: f"{match[0][:8]}…", value)).chars(length)
    long = LONG_WORD.search(text) is not None
    if text == value:
        return format_html('<span class="long-text">{}</span>', value) if long else value
    if long:
        return format_html('<span class="long-text" title="{}">{}</span>', value, text)
    return format_html('<span title="{}">{}</span>', value, text)


def short_time(value):
    """`2026-12-02 11:24` in the site's time zone: the admin's default takes twice the width."""
    if value is None:
        return None
    local = localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        local.isoformat(timespec="seconds"),
        date_format(local, "DATETIME_FORMAT"),
        date_format(local, "Y-m-d H:i"),
    )

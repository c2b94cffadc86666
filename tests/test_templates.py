"""Template hygiene that the template engine does not check for us."""

from pathlib import Path

from django.conf import settings

TEMPLATE_DIRS = [Path(d) for d in settings.TEMPLATES[0]["DIRS"]]


def test_no_comment_spans_lines():
    # Django's {# ... #} ends at the end of its line; one left open is printed on the page, and
    # a tag inside it (a "<form>") is parsed by the browser: that broke the Records filters.
    open_comments = [
        f"{path}:{number}"
        for directory in TEMPLATE_DIRS
        for path in sorted(directory.rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "{#" in line and "#}" not in line.split("{#", 1)[1]
    ]
    assert not open_comments, (
        f"use {{% comment %}} for comments over several lines: {open_comments}"
    )


def test_the_records_filters_render_as_one_form(support_client, world):
    text = support_client.get("/t/acme/records/order/").text
    assert "{#" not in text
    form_at = text.index('<form id="records-filters"')
    assert "<form" not in text[text.index('<div class="records-filters"') : form_at]

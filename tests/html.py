"""Read a response as a person does: the text, without the markup."""

import html
import re


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())

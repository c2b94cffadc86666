"""Input rules (docs/architecture.md), shared by forms, services and the API."""

import json
import re
from decimal import Decimal, InvalidOperation

from common.errors import InvalidValue

MAX_ID_LENGTH = 255
MAX_SOURCE_CODE_LENGTH = 100
RECORD_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
CUSTOM_DATA_TYPES = ("string", "bool", "integer", "decimal", "json")
SELF_MADE_MODULE_PREFIX = "x-"


# Unicode category Cc is exactly these 65 code points (C0, DEL, C1); one regex search is
# ~10x faster than unicodedata per character, which matters for 100k-row imports.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def has_control_characters(value: str) -> bool:
    return CONTROL_CHARACTERS.search(value) is not None


def clean_remote_id(value, *, field: str = "remote_id", label: str = "Id") -> str:
    """Trim an id and refuse empty, over-long or control-character ids. Ids are strings."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidValue(f"{label} must be text, not a number.", field=field)
    value = value.strip()
    if not value:
        raise InvalidValue(f"{label} is required.", field=field, code="required")
    _check_length_and_characters(value, field=field, label=label)
    return value


def clean_remote_ref(value, *, field: str = "remote_ref", label: str = "Ref") -> str:
    """A human-readable ref is optional; when given it follows the id rules."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidValue(f"{label} must be text.", field=field)
    value = value.strip()
    if value:
        _check_length_and_characters(value, field=field, label=label)
    return value


def _check_length_and_characters(
    value: str, *, field: str, label: str, max_length: int = MAX_ID_LENGTH
) -> None:
    """The one wording of the text limits, for ids, refs, keys and codes alike."""
    if len(value) > max_length:
        raise InvalidValue(
            f"{label} is {len(value)} characters long; at most {max_length} are allowed.",
            field=field,
        )
    if has_control_characters(value):
        raise InvalidValue(
            f"{label} contains control characters (tabs, line breaks...); remove them.",
            field=field,
        )


def clean_source_code(value, *, field: str = "record_source.code") -> str:
    """A record's recordSource.code: optional text naming one source in the creating system."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidValue("The source code must be text.", field=field)
    value = value.strip()
    _check_length_and_characters(
        value, field=field, label="The source code", max_length=MAX_SOURCE_CODE_LENGTH
    )
    return value


def clean_record_type(value) -> str:
    value = (value or "").strip() if isinstance(value, str) else ""
    if not RECORD_TYPE_PATTERN.match(value):
        raise InvalidValue(
            "Record type must be lowercase letters, digits or _ (e.g. order).", field="record_type"
        )
    return value


def clean_module_id(value, *, field: str = "module_id") -> str:
    return _clean_key_part(value, field=field, label="Module id", max_length=100)


def clean_custom_key(value, *, field: str = "key") -> str:
    return _clean_key_part(value, field=field, label="Key", max_length=200)


def _clean_key_part(value, *, field: str, label: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{label} is required.", field=field, code="required")
    value = value.strip()
    if "|" in value:
        raise InvalidValue(f"{label} must not contain |.", field=field)
    _check_length_and_characters(value, field=field, label=label, max_length=max_length)
    return value


def parse_custom_value(type_: str, value):
    """Parse `value` as `type_` and return what is stored.

    Accepts text (from forms and CSV) or the native JSON value (from the API). Decimals are
    kept as their exact string so that 0.1 stays 0.1.
    """
    if type_ not in CUSTOM_DATA_TYPES:
        raise InvalidValue(
            f"Type must be one of {', '.join(CUSTOM_DATA_TYPES)}.", field="type", code="type"
        )
    try:
        return _PARSERS[type_](value)
    except (ValueError, TypeError, InvalidOperation, json.JSONDecodeError, RecursionError):
        raise InvalidValue(_TYPE_HINTS[type_], field="value") from None


def _parse_string(value):
    if not isinstance(value, str):
        raise TypeError
    return value


def _parse_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no"}:
            return False
    raise ValueError


def _parse_integer(value):
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,30}\s*", value):
        return int(value)
    raise ValueError


def _parse_decimal(value):
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError
    number = Decimal(str(value).strip())
    if not number.is_finite():
        raise ValueError
    return str(number)


def _parse_json(value):
    if isinstance(value, str):
        return json.loads(value)
    json.dumps(value)  # anything the API sent is already JSON; refuse what cannot round-trip
    return value


_PARSERS = {
    "string": _parse_string,
    "bool": _parse_bool,
    "integer": _parse_integer,
    "decimal": _parse_decimal,
    "json": _parse_json,
}
_TYPE_HINTS = {
    "string": "Value must be text.",
    "bool": "Value must be true or false.",
    "integer": "Value must be a whole number, e.g. 42.",
    "decimal": "Value must be a decimal number, e.g. 12.50.",
    "json": 'Value must be valid JSON, e.g. {"a": 1}.',
}


def format_custom_value(type_: str, value) -> str:
    """The text an edit form shows for a stored value (inverse of parse_custom_value)."""
    if type_ == "bool":
        return "true" if value else "false"
    if type_ == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return "" if value is None else str(value)


def check_storable_json(value, *, field: str, depth: int = 0) -> None:
    """Refuse JSON that the database cannot store: NUL characters (PostgreSQL text and jsonb
    have none), lone surrogates (not UTF-8), NaN/Infinity (not JSON), runaway nesting."""
    if depth > 64:
        raise InvalidValue("Nested too deeply (at most 64 levels).", field=field)
    if isinstance(value, str):
        _check_storable_text(value, field=field)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidValue("Numbers must be finite (no NaN or Infinity).", field=field)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable_text(str(key), field=field)
            check_storable_json(item, field=field, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable_json(item, field=field, depth=depth + 1)


def _check_storable_text(value: str, *, field: str) -> None:
    if "\x00" in value:
        raise InvalidValue("Text must not contain NUL characters (\\u0000).", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(
            "Text must be valid Unicode (no lone surrogates).", field=field
        ) from None

"""What the JSON API's bodies mean: values parsed and checked as the API receives them.

The schemas (records/schemas.py) say the shapes; these say what a value may be, with errors
naming the field the connector sent.
"""

from __future__ import annotations

import json

from common.errors import DomainError, InvalidValue
from integrations.models import Connection

from .custom_data import CustomDataInput, clean_custom_data_input
from .validation import (
    check_storable_json,
    clean_remote_id,
    clean_remote_ref,
)


def clean_record_data(value, *, field: str = "data") -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue("Data must be a JSON object.", field=field)
    check_storable_json(value, field=field)
    return value


def clean_own_remote_id(remote_id, remote_ref) -> tuple[str | None, str]:
    """A connection's (id, ref): id None means "none"; a ref needs an id."""
    ref = clean_remote_ref(remote_ref, field="remote_ref", label="Remote ref")
    check_storable_json(ref, field="remote_ref")
    if remote_id is None:
        if ref:
            raise InvalidValue("A remote ref needs a remote id.", field="remote_ref")
        return None, ""
    remote_id = clean_remote_id(remote_id, field="remote_id", label="Remote id")
    check_storable_json(remote_id, field="remote_id")
    return remote_id, ref


def remote_id_lookup_value(remote_id) -> str:
    """The remote id a by-remote-id lookup asks for, validated like one that is written."""
    remote_id = clean_remote_id(remote_id, field="remote_id", label="Remote id")
    check_storable_json(remote_id, field="remote_id")
    return remote_id


def parse_custom_data_entries(tenant, entries: dict) -> list[CustomDataInput]:
    """Entries as the API sends them: {"connectionId|moduleId|key": {type, value, ...}}.

    Errors name the entry: field `custom_data.<name>.<part>`.
    """
    connections: dict[str, Connection | None] = {"": None}
    parsed = []
    for name, body in entries.items():
        field = f"custom_data.{name}"
        parts = name.split("|")
        if len(parts) != 3:
            raise InvalidValue(
                "Custom data names are connectionId|moduleId|key (connectionId may be empty).",
                field=field,
            )
        connection_id, module_id, key = parts
        for part, given in (
            ("connection", body.get("connectionId")),
            ("module_id", body.get("moduleId")),
            ("key", body.get("key")),
        ):
            expected = {"connection": connection_id, "module_id": module_id, "key": key}[part]
            if given is not None and given != expected:
                raise InvalidValue(
                    f"Does not match the entry's name {name}.", field=f"{field}.{part}"
                )
        if connection_id not in connections:
            # Another tenant's connection is as unknown as one that does not exist.
            connections[connection_id] = (
                Connection.objects.for_tenant(tenant).filter(connection_id=connection_id).first()
                if len(connection_id) <= 32 and "\x00" not in connection_id
                else None
            )
        connection = connections[connection_id]
        if connection is None and connection_id:
            raise InvalidValue(f"Unknown connection {connection_id}.", field=f"{field}.connection")
        value = body.get("value")
        if body.get("type") == "json":
            # API values are native JSON: a string is a JSON string, not JSON text to parse.
            value = json.dumps(value)
        entry = CustomDataInput(module_id, key, body.get("type"), value, connection)
        try:
            check_storable_json(body.get("value"), field="value")
            parsed.append(clean_custom_data_input(entry, tenant))
        except DomainError as error:
            error.field = f"{field}.{error.field}" if error.field else field
            raise
    return parsed


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match value asks for (`"7"`, `W/"7"` or `7`); None without one."""
    if value is None or value.strip() == "*":
        return None
    value = value.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 9:
        raise InvalidValue(
            'If-Match must be the ETag of the record you read, e.g. "7" (its version).',
            field="If-Match",
        )
    return int(value)

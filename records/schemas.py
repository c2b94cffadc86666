"""The JSON API's request and response bodies (camelCase, as the Integration Platform's API).

Field names are the wire names, so the OpenAPI schema, the code and the README read the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema
from pydantic import model_validator

from .models import CustomData, Record
from .validation import RECORD_TYPE_PATTERN

RECORD_TYPE_DESCRIPTION = (
    "A record type: `article`, `customer`, `order`, `invoice`, `stock` (any lowercase name "
    "of letters, digits and `_` is accepted)."
)
RECORD_TYPE_REGEX = RECORD_TYPE_PATTERN.pattern
CustomDataType = Literal["string", "bool", "integer", "decimal", "json"]


class CustomDataEntryOut(Schema):
    connectionId: str = Field(description="Empty when the entry is not connection-scoped.")
    moduleId: str
    key: str
    type: CustomDataType
    value: Any = Field(
        description="string, bool, integer, json: the JSON value; decimal: its exact string."
    )


class CustomDataEntryIn(Schema):
    """One entry; the `connectionId|moduleId|key` it is filed under names it.

    `connectionId`, `moduleId` and `key` may be repeated here (as GET returns them); then they
    must agree with the name.
    """

    type: CustomDataType
    value: Any = Field(
        description='Native JSON (e.g. `true`, `42`, `"12.50"`) or text that parses as `type`.'
    )
    connectionId: str | None = None
    moduleId: str | None = None
    key: str | None = None


CUSTOM_DATA_DESCRIPTION = (
    "Keyed `connectionId|moduleId|key`; the connection part is empty for entries that are not "
    "connection-scoped. A connection may write only its own and unscoped entries."
)


class RecordOut(Schema):
    localId: str = Field(description="32 lowercase hex characters, never changes.")
    recordType: str
    remoteId: str | None = Field(description="This connection's id for the record.")
    remoteRef: str | None = Field(description="This connection's human-readable ref.")
    remoteIdMap: dict[str, str] = Field(
        description="Read-only: every connection's id, keyed by connectionId."
    )
    remoteRefMap: dict[str, str] = Field(
        description="Read-only: every connection's ref, keyed by connectionId."
    )
    customData: dict[str, CustomDataEntryOut] = Field(description=CUSTOM_DATA_DESCRIPTION)
    data: dict[str, Any]
    lastModified: datetime
    lastModifiedBy: str = Field(description="`{type}/{id}`, e.g. `connection/<connectionId>`.")
    recordSource: str = Field(description="Who created the record, `{type}/{id}`.")
    version: int = Field(description="Goes up with every change.")


class RecordReplaced(RecordOut):
    keptCustomData: list[str] = Field(
        description=(
            "Custom data keys scoped to other connections: PUT never touches them, so they "
            "were kept as they were (they are also in customData)."
        )
    )


class RecordPage(Schema):
    items: list[RecordOut]
    nextCursor: str | None = Field(
        description=(
            "Pass as `cursor` to get the records after these. Also given on the last page, "
            "so a client can store it and ask again later for what changed since."
        )
    )
    hasMore: bool = Field(description="More records match right now.")


class JsonObjectBody(Schema):
    """A request body must be a JSON object: ninja's Schema would read `null`, `[]` or a string
    as an object with no attributes, i.e. every field at its default (an empty record)."""

    @model_validator(mode="before")
    @classmethod
    def _must_be_an_object(cls, data):
        # ninja hands validators its DjangoGetter wrapper; the parsed JSON is in `_obj`.
        if not isinstance(getattr(data, "_obj", data), dict):
            raise ValueError("The body must be a JSON object.")
        return data


class RecordCreate(JsonObjectBody):
    remoteId: str | None = Field(None, description="This connection's id for the new record.")
    remoteRef: str | None = Field(None, description="Needs remoteId.")
    data: dict[str, Any] = Field(default_factory=dict)
    customData: dict[str, CustomDataEntryIn] = Field(
        default_factory=dict, description=CUSTOM_DATA_DESCRIPTION
    )


class RecordReplace(JsonObjectBody):
    """PUT replaces: send every field; `remoteId: null` removes this connection's id."""

    remoteId: str | None = Field(description="This connection's id; null removes it.")
    remoteRef: str | None = Field(None, description="Needs remoteId; null or omitted is empty.")
    data: dict[str, Any]
    customData: dict[str, CustomDataEntryIn] = Field(
        description=(
            CUSTOM_DATA_DESCRIPTION + " This connection's and unscoped entries not sent are "
            "deleted; entries scoped to other connections are kept (see keptCustomData)."
        )
    )


class CustomDataUpsert(JsonObjectBody):
    customData: dict[str, CustomDataEntryIn] = Field(description=CUSTOM_DATA_DESCRIPTION)


class CustomDataOut(Schema):
    localId: str
    customData: dict[str, CustomDataEntryOut] = Field(description=CUSTOM_DATA_DESCRIPTION)


class FieldError(Schema):
    field: str = Field(description="Dotted path in the request, e.g. `customData.|x-a|k.value`.")
    message: str
    code: str


class HeldBy(Schema):
    localId: str
    recordType: str


class ErrorOut(Schema):
    """Every error has this shape: 401, 403, 404, 409, 422."""

    detail: str = Field(description="What went wrong, for a person.")
    code: str = Field(
        description="unauthorized, forbidden, not_found, conflict, invalid, required, type, ..."
    )
    errors: list[FieldError] = Field(description="Field errors (422, and 403/409 on a field).")
    heldBy: HeldBy | None = Field(None, description="409 on a remoteId: the record that holds it.")


# --- records -> bodies -------------------------------------------------------------------


def custom_data_out(items) -> dict[str, dict]:
    return {
        item.full_key: {
            "connectionId": item.connection_key,
            "moduleId": item.module_id,
            "key": item.key,
            "type": item.type,
            "value": item.value,
        }
        for item in items
    }


def record_out(record: Record, connection) -> dict:
    """A record as `connection` sees it. Expects remote_ids and custom_data prefetched."""
    rows = list(record.remote_ids.all())
    own = next((row for row in rows if row.connection_id == connection.pk), None)
    items: list[CustomData] = list(record.custom_data.all())
    return {
        "localId": record.local_id,
        "recordType": record.record_type,
        "remoteId": own.remote_id if own else None,
        "remoteRef": own.remote_ref if own else None,
        "remoteIdMap": {row.connection.connection_id: row.remote_id for row in rows},
        "remoteRefMap": {row.connection.connection_id: row.remote_ref for row in rows},
        "customData": custom_data_out(items),
        "data": record.data if isinstance(record.data, dict) else {},
        "lastModified": record.last_modified,
        "lastModifiedBy": record.last_modified_by,
        "recordSource": record.record_source,
        "version": record.version,
    }

"""The JSON API's request and response bodies (camelCase, as the Integration Platform's API).

Field names are the wire names, so the OpenAPI schema, the code and the README read the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import BeforeValidator, ConfigDict, RootModel, model_validator

from .models import Record
from .validation import MAX_SOURCE_CODE_LENGTH, RECORD_TYPE_PATTERN

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


# --- recordSource: who created the record ---------------------------------------------------

SOURCE_CODE_DESCRIPTION = (
    "Which source in the remote system the record came from, for a remote system that has "
    "several (e.g. one web shop of many). The one part of recordSource a client sets: on POST, "
    "and on PUT by the connection that created the record. null when none was given."
)


class ConnectionSource(Schema):
    """Created through a connection (an API write or a sync)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "connection",
                    "connectionType": "api",
                    "connectionId": "9f2c4e1ab3d84c0f8e5a7b6c1d2e3f40",
                    "connectionName": "Warehouse API",
                    "code": "store-2",
                }
            ]
        }
    )

    type: Literal["connection"]
    connectionType: str | None = Field(
        description=(
            "The connector of the connection, e.g. `api`, `shopify`, `fortnox`. "
            "null when the connection no longer exists."
        )
    )
    connectionId: str = Field(description="The connectionId of the connection (32 hex).")
    connectionName: str | None = Field(
        description="The connection's name, e.g. `Warehouse API`; null when it no longer exists."
    )
    code: str | None = Field(description=SOURCE_CODE_DESCRIPTION)


class UserSource(Schema):
    """Created by a person logged in to the platform."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"type": "user", "login": "admin"}]})

    type: Literal["user"]
    login: str = Field(description="The user's login name.")


class SystemSource(Schema):
    """Created by the platform itself."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"type": "system", "name": "sync"}]})

    type: Literal["system"]
    name: str = Field(description="What created it, e.g. `sync` or `seed_demo`.")


RecordSourceOut = Annotated[
    ConnectionSource | UserSource | SystemSource, Field(discriminator="type")
]


class RecordSourceIn(Schema):
    """Only `code` is read. The other fields (as GET returns them) are ignored, never applied:
    who created the record is never the client's to say."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "store-2"}]})

    code: str | None = Field(
        None,
        max_length=MAX_SOURCE_CODE_LENGTH,
        description=(
            SOURCE_CODE_DESCRIPTION + " Omitted: unchanged (POST: none); null or empty: "
            "removed. Trimmed; at most 100 characters, no control characters."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _must_be_an_object(cls, data):
        # As JsonObjectBody: ninja would read a string as an object with no attributes.
        if not isinstance(getattr(data, "_obj", data), dict):
            raise ValueError('recordSource must be an object, e.g. {"code": "store-2"}.')
        return data

    @property
    def sets_code(self) -> bool:
        return "code" in self.model_fields_set


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
    recordSource: RecordSourceOut = Field(
        description=(
            "Who created the record, by `type`: a `connection` (with connectionType, "
            "connectionId, connectionName and the `code` of the source it came from), a "
            "`user` (with `login`) or the `system` (with `name`: what did it). Read-only but "
            "for `code`."
        )
    )
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
            "Pass as `cursor` to get the records after these. Also given on the last page: "
            "store it and start the next sync from it, to get what changed since and never "
            "miss a change. Opaque. `null` only while nothing was handed out: ask again with "
            "the same `modifiedAtOrAfter`."
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
    recordSource: RecordSourceIn | None = Field(
        None,
        description=(
            'Optional `{"code": "..."}`: which of this connection\'s sources the record '
            "comes from. The record's source is this connection; other fields are ignored."
        ),
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
    recordSource: RecordSourceIn | None = Field(
        None,
        description=(
            'Optional `{"code": "..."}` to change the code; omitted, null or without '
            "`code`, it stays as it is. Only the connection that created the record may change "
            "it (403 otherwise; sending the current value back is fine). Other fields are "
            "ignored."
        ),
    )


class CustomDataUpsert(JsonObjectBody):
    """The entries under `customData`, keyed `connectionId|moduleId|key`."""

    customData: dict[str, CustomDataEntryIn] = Field(description=CUSTOM_DATA_DESCRIPTION)


class CustomDataEntry(Schema):
    """One entry, named by its own fields (as GET returns each entry)."""

    connectionId: str | None = Field(
        None,
        description="Your connectionId for an entry scoped to your connection; omitted, null "
        "or empty for an unscoped entry.",
    )
    moduleId: str
    key: str
    type: CustomDataType
    value: Any = Field(
        description='Native JSON (e.g. `true`, `42`, `"12.50"`) or text that parses as `type`.'
    )


class CustomDataEntryList(RootModel[list[CustomDataEntry]]):
    """A list of entries, each named by its own fields; each name at most once."""


class CustomDataByName(RootModel[dict[str, CustomDataEntryIn]]):
    """The customData object itself (as GET returns it): entries keyed
    `connectionId|moduleId|key`."""


CUSTOM_DATA_ENTRY_FIELDS = frozenset(CustomDataEntry.model_fields)


def _entry_name(entry: dict) -> str:
    """`connectionId|moduleId|key` of an entry sent on its own. A part that is missing or not
    text is empty in the name; the entry's own field then gets the error it gets under
    customData (e.g. `customData.||k.moduleId`: "Module id is required")."""
    parts = (entry.get(part) for part in ("connectionId", "moduleId", "key"))
    return "|".join(part if isinstance(part, str) else "" for part in parts)


def _entries_by_name(entries: list) -> dict:
    named = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(
                "Each entry must be an object {connectionId, moduleId, key, type, value}."
            )
        name = _entry_name(entry)
        if name in named:
            raise ValueError(f"Entry {name} is sent twice; send each entry once.")
        named[name] = entry
    return named


def custom_data_upsert_body(data):
    """Any of the four shapes POST .../customdata accepts, as `{"customData": {name: entry}}`:
    then one validation gives every shape the same 422s, naming the entry
    (`customData.|x-wms|priority.value`)."""
    if isinstance(data, list):
        return {"customData": _entries_by_name(data)}
    if not isinstance(data, dict):
        raise ValueError("The body must be a JSON object or a list of entries.")
    if "customData" in data:
        return data
    if data.keys() & CUSTOM_DATA_ENTRY_FIELDS:
        return {"customData": _entries_by_name([data])}
    return {"customData": data}


CustomDataUpsertBody = Annotated[
    CustomDataUpsert,
    BeforeValidator(
        custom_data_upsert_body,
        json_schema_input_type=(
            CustomDataUpsert | CustomDataEntry | CustomDataEntryList | CustomDataByName
        ),
    ),
]


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
    heldBy: HeldBy | None = Field(
        None,
        description="409 on a remoteId: the record that holds it (`detail` names it by its "
        "other remote ids and says how to free the id).",
    )


# --- batches ---------------------------------------------------------------------------

BATCH_LIMIT = 500


class BatchLookup(JsonObjectBody):
    remoteIds: list[str] = Field(
        min_length=1, max_length=BATCH_LIMIT, description="This connection's ids (1-500)."
    )


class LookupItem(Schema):
    remoteId: str
    record: RecordOut | None = Field(description="null: this connection knows no record by it.")


class LookupOut(Schema):
    items: list[LookupItem] = Field(description="One per remoteId asked for, in that order.")


class BatchWriteItem(JsonObjectBody):
    localId: str | None = Field(
        None, description="Omitted: create a record (as POST). Given: replace it (as PUT)."
    )
    ifMatch: str | None = Field(
        None, description="A replace's If-Match: the ETag (version) you read of that record."
    )
    remoteId: str | None = Field(None, description="This connection's id; null removes it.")
    remoteRef: str | None = Field(None, description="Needs remoteId.")
    data: dict[str, Any] = Field(default_factory=dict)
    customData: dict[str, CustomDataEntryIn] = Field(
        default_factory=dict, description=CUSTOM_DATA_DESCRIPTION
    )
    recordSource: RecordSourceIn | None = Field(
        None, description='Optional `{"code": "..."}`, as in the single create and replace.'
    )


class BatchWrite(JsonObjectBody):
    items: list[BatchWriteItem] = Field(min_length=1, max_length=BATCH_LIMIT)


class BatchItemOut(Schema):
    status: int = Field(description="201 created, 200 replaced, or the error's status.")
    record: RecordOut | None = None
    keptCustomData: list[str] | None = Field(None, description="As PUT returns it.")
    error: ErrorOut | None = Field(None, description="The single call's error body.")


class BatchWriteOut(Schema):
    items: list[BatchItemOut] = Field(description="One per item sent, in that order.")
    written: int = Field(description="How many items were written.")


# --- records -> bodies -------------------------------------------------------------------


def custom_data_out(rows) -> dict[str, dict]:
    """customData by full key, from a record's `custom_data_rows` (records.services)."""
    entries = sorted(
        rows or [], key=lambda row: (row["connection_hex"] or "", row["module_id"], row["key"])
    )
    return {
        f"{row['connection_hex'] or ''}|{row['module_id']}|{row['key']}": {
            "connectionId": row["connection_hex"] or "",
            "moduleId": row["module_id"],
            "key": row["key"],
            "type": row["type"],
            "value": row["value"],
        }
        for row in entries
    }


def record_source_out(record: Record) -> dict:
    """recordSource. Expects source_connection__connector selected (no query of its own)."""
    source = record.source
    if source.kind == "connection":
        connection = source.connection
        return {
            "type": "connection",
            "connectionType": connection.connector.code if connection else None,
            "connectionId": source.ident,
            "connectionName": connection.name if connection else None,
            "code": source.code or None,
        }
    if source.kind == "user":
        return {"type": "user", "login": source.ident}
    return {"type": "system", "name": source.ident}


def record_out(record: Record, connection) -> dict:
    """A record as `connection` sees it, from records.services.records_with_ids_and_custom_data
    (its remote ids and custom data come in the record's own query, as JSON rows)."""
    rows = sorted(record.remote_id_rows or [], key=lambda row: row["pk"])
    own = next((row for row in rows if row["connection_pk"] == connection.pk), None)
    return {
        "localId": record.local_id,
        "recordType": record.record_type,
        "remoteId": own["remote_id"] if own else None,
        "remoteRef": own["remote_ref"] if own else None,
        "remoteIdMap": {row["connection_hex"]: row["remote_id"] for row in rows},
        "remoteRefMap": {row["connection_hex"]: row["remote_ref"] for row in rows},
        "customData": custom_data_out(record.custom_data_rows),
        "data": record.data if isinstance(record.data, dict) else {},
        "lastModified": record.last_modified,
        "lastModifiedBy": record.last_modified_by,
        "recordSource": record_source_out(record),
        "version": record.version,
    }

"""The JSON API for API connections, at /api/v1/ (django-ninja).

Thin on purpose: authentication, (de)serialisation and error shapes live here; every rule is
in records/services.py, which the HTML views call too. A request acts as one API connection
(HTTP Basic: connection_id + API key) on that connection's tenant only.
"""

from __future__ import annotations

import json
from datetime import datetime

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse
from ninja import NinjaAPI, Path, Query, Router, Status
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.openapi.docs import Swagger
from ninja.responses import NinjaJSONEncoder
from ninja.security import HttpBasicAuth

from common.errors import DomainError, error_body
from integrations import apikeys, throttling

from . import batch, bodies, queries, services, wire
from .audit import Actor
from .errors import BulkChangeRunning, Conflict, VersionMismatch
from .schemas import (
    RECORD_TYPE_DESCRIPTION,
    RECORD_TYPE_REGEX,
    BatchLookup,
    BatchWrite,
    BatchWriteOut,
    CustomDataOut,
    CustomDataUpsertBody,
    ErrorOut,
    LookupOut,
    RecordCreate,
    RecordOut,
    RecordPage,
    RecordReplace,
    RecordReplaced,
    custom_data_out,
    record_out,
)

REALM = "refdesk"
MAX_LIMIT = 1000
# Seconds a client waits before retrying a write that a bulk change refused (409).
BULK_CHANGE_RETRY_AFTER = "5"

API_DESCRIPTION = """
Records of one tenant, for remote systems that integrate through an **API connection**.

**Authentication**: HTTP Basic, user name = the connection's `connectionId`, password = its API
key (`python manage.py api_key <connectionId>` rotates and prints one).

**Errors** all have one shape: `{"detail", "code", "errors": [{"field", "message", "code"}],
"heldBy"}`. 400 a body that is not JSON, 401 bad or missing credentials, 403 writing what this
connection may not write (custom data scoped to another connection), 404 unknown record (or
another tenant's), 409 a remoteId another record holds: `detail` names that record by its
ids in the other connections ("known as Shopify 5001 (#1001)") and says how to resolve it
(remove the id from that record first, `PUT` it with `"remoteId": null` at `heldBy.localId`,
then retry; or use another id), or with
`code: bulk_change_running` a bulk change (a delete-all, an import...) of these records is being
written: nothing was written, try again after `Retry-After` seconds; 413 a body over the size
limit; 415 a write whose body is not sent as `Content-Type: application/json`; 422 invalid input
with field errors, 429 too many failed authentications for this connectionId or from this
address (wait `Retry-After` seconds).

**Read-only fields** in request bodies (`localId`, `remoteIdMap`, `remoteRefMap`,
`lastModified`, ...) are ignored, never applied: a connection sets only its own `remoteId`.
Of `recordSource` (who created the record) only `code` is read; the rest is ignored.
"""


FEED_CONTRACT = """
**The contract: follow it and you never miss a committed change.**

1. First sync: send `modifiedAtOrAfter` (or nothing, for everything).
2. Page: while `hasMore` is true, send the page's `nextCursor` back as `cursor` (the same
   `limit` or another; leave `modifiedAtOrAfter` out or send the same one).
3. **Store the last `nextCursor`** when `hasMore` is false, and start the next sync from it:
   you get only what changed since. If it is `null` (nothing was handed out yet), ask again
   with the same `modifiedAtOrAfter`.

The cursor is opaque: store it as it is (a string of up to a few hundred characters), send it
back unchanged; it never expires.

Each change comes at least once: a record changed again after you were given it comes
again, later (keep the newest by `version`). A change is handed out only once no
transaction still running can come before it, so a write that takes long to commit (a bulk
change of 100,000 records, a delete-all) is never skipped: the feed holds back what was
written after it started until it commits, then hands out both. So a record can appear a
few seconds (the length of the longest running write) after its `lastModified`.

The order is the order writes happened in (by transaction), so `lastModified` is not
monotonic along the feed, and a stored `lastModified` is not a safe place to resume from:
the cursor is.
"""


class ConnectionKeyAuth(HttpBasicAuth):
    """connection_id + API key; only active connections of an API connector."""

    def authenticate(self, request, username, password):
        # Failed attempts are throttled (integrations/throttling.py): past the limit a wrong key
        # gets 429 instead of 401. A right key is never held back: keys are 256-bit random, so
        # guessing is hopeless anyway, and a locked-out key would let anyone who knows a
        # connectionId (it is in audit trails) stop that connection's sync. The success path
        # costs no query.
        connection = apikeys.authenticate(username, password)
        if connection is None:
            lockout = throttling.check("api", username, request)
            if lockout:
                raise Throttled(wait=lockout.retry_after)
            throttling.record_failure("api", username, request)
        return connection


api = NinjaAPI(
    title="refdesk API",
    version="1",
    description=API_DESCRIPTION,
    auth=ConnectionKeyAuth(),
    urls_namespace="api-v1",
    # Swagger UI from ninja's bundled static files (no CDN), and no call to the online validator.
    docs=Swagger(settings={"validatorUrl": None}),
    # Swagger UI sets inline styles: loosen style-src for the docs page only.
    docs_decorator=csp_update({"style-src": [UNSAFE_INLINE]}),
)

# --- one error shape -------------------------------------------------------------------

WIRE_NAMES = {
    "remote_id": "remoteId",
    "remote_ref": "remoteRef",
    "custom_data": "customData",
    "module_id": "moduleId",
    "connection": "connectionId",
    "record_type": "recordType",
    "record_source": "recordSource",
    "modified_at_or_after": "modifiedAtOrAfter",
}
PARAM_SOURCES = {"body", "query", "path", "header", "cookie", "form"}


def wire_field(field: str) -> str:
    """`custom_data.|x-a|k.module_id` -> `customData.|x-a|k.moduleId`."""
    return ".".join(WIRE_NAMES.get(part, part) for part in field.split("."))


def domain_error_body(exc: DomainError) -> dict:
    """The body of a refused write: the same for a single call and for a batch's item."""
    errors = []
    if exc.field:
        errors.append({"field": wire_field(exc.field), "message": exc.message, "code": exc.code})
    held_by = None
    if isinstance(exc, Conflict) and exc.holder is not None:
        held_by = {"localId": exc.holder.local_id, "recordType": exc.holder.record_type}
    code = "forbidden" if exc.status == 403 and exc.code == "invalid" else exc.code
    return error_body(exc.message, code, errors, held_by)


@api.exception_handler(DomainError)
def domain_error(request, exc: DomainError):
    response = api.create_response(request, domain_error_body(exc), status=exc.status)
    if isinstance(exc, VersionMismatch):
        response["ETag"] = etag(exc.current_version)
    if isinstance(exc, BulkChangeRunning):
        response["Retry-After"] = BULK_CHANGE_RETRY_AFTER
    return response


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    errors = []
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in PARAM_SOURCES:
            loc = loc[1:]
        if loc and loc[0] == "payload":
            loc = loc[1:]
        errors.append(
            {
                "field": ".".join(loc) or "body",
                "message": error.get("msg", "Invalid."),
                "code": error.get("type", "invalid"),
            }
        )
    return api.create_response(request, error_body("Invalid input.", "invalid", errors), status=422)


@api.exception_handler(AuthenticationError)
def unauthorized(request, exc):
    response = api.create_response(
        request,
        error_body(
            "Send HTTP Basic credentials: your connectionId and its API key.", "unauthorized"
        ),
        status=401,
    )
    response["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


@api.exception_handler(Throttled)
def throttled(request, exc: Throttled):
    lockout = throttling.Lockout(exc.wait or 60)
    response = api.create_response(request, error_body(lockout.message, "throttled"), status=429)
    response["Retry-After"] = str(lockout.retry_after)
    return response


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    # ninja raises these itself, e.g. 400 for a body that is not JSON.
    code = {400: "bad_request"}.get(exc.status_code, "error")
    return api.create_response(request, error_body(exc.message, code), status=exc.status_code)


@api.exception_handler(Http404)
def not_found(request, exc):
    return api.create_response(
        request, error_body("No such record on this tenant.", "not_found"), status=404
    )


@api.exception_handler(RequestDataTooBig)
def too_big(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return api.create_response(
        request,
        error_body(f"The body is larger than {limit:,} bytes; send fewer records.", "too_large"),
        status=413,
    )


# Methods whose body the API reads.
BODY_METHODS = {"POST", "PUT", "PATCH"}


def json_bodies_only(run):
    """Writes take `application/json` only (415 otherwise). A cross-site form can post
    text/plain, urlencoded or multipart without asking first (no CORS preflight), and a browser
    that cached a connection's Basic credentials would send them along; it can never send
    application/json that way."""

    def checked(request, *args, **kwargs):
        if request.method in BODY_METHODS and request.content_type != "application/json":
            return api.create_response(
                request,
                error_body("Send the body as JSON, with Content-Type: application/json.",
                           "unsupported_media_type"),
                status=415,
            )  # fmt: skip
        return run(request, *args, **kwargs)

    return checked


# --- endpoints -------------------------------------------------------------------------

router = Router(tags=["records"])
router.add_decorator(json_bodies_only, mode="view")  # before authentication and the body
READ_ERRORS = {401: ErrorOut, 404: ErrorOut, 422: ErrorOut, 429: ErrorOut}
WRITE_ERRORS = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    413: ErrorOut,
    415: ErrorOut,
    422: ErrorOut,
    429: ErrorOut,
}
REPLACE_ERRORS = {**WRITE_ERRORS, 412: ErrorOut}
RecordType = Path(..., pattern=RECORD_TYPE_REGEX, description=RECORD_TYPE_DESCRIPTION)


def etag(version: int) -> str:
    """A record's ETag is its version: GET gives it, PUT takes it back in If-Match."""
    return f'"{version}"'


def if_match_version(request) -> int | None:
    """The version an If-Match header asks for (`"7"`, `W/"7"` or `7`); None without one."""
    return wire.parse_if_match(request.headers.get("If-Match"))


LocalId = Path(..., description="The record's localId (32 lowercase hex).")


def _get_record(request, record_type: str, local_id: str):
    record = queries.record_by_local_id.first(
        tenant_id=request.auth.tenant_id, record_type=record_type, local_id=local_id
    )
    if record is None:
        raise Http404
    return record


def _actor(request):
    return Actor.for_connection(request.auth)


@router.get(
    "/{record_type}/by-remote-id",
    response={200: RecordOut, **READ_ERRORS},
    summary="The record this connection knows by a remoteId",
)
def get_by_remote_id(
    request,
    response: HttpResponse,
    record_type: str = RecordType,
    remoteId: str = Query(..., description="This connection's id (case-sensitive)."),
):
    remote_id = wire.remote_id_lookup_value(remoteId)
    if bodies.available():
        found = bodies.by_remote_id(request.auth.tenant_id, request.auth, record_type, [remote_id])
        if remote_id not in found:
            raise Http404
        version, body = found[remote_id]
        built = _json_text(body)
        built["ETag"] = etag(version)
        return built
    record = queries.record_by_remote_id.first(
        tenant_id=request.auth.tenant_id,
        connection_id=request.auth.pk,
        record_type=record_type,
        remote_id=remote_id,
    )
    if record is None:
        raise Http404
    response["ETag"] = etag(record.version)
    return record_out(record, request.auth)


@router.get(
    "/{record_type}",
    response={200: RecordPage, **READ_ERRORS},
    summary="Records changed at or after a time (delta sync), oldest first",
    description=FEED_CONTRACT,
)
def list_changed(
    request,
    record_type: str = RecordType,
    modifiedAtOrAfter: datetime | None = Query(
        None, description="ISO 8601; without an offset it is UTC. Omitted: from the start."
    ),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, description="nextCursor of the previous page."),
):
    records, has_more, next_cursor = services.changed_records(
        request.auth.tenant,
        record_type,
        since=modifiedAtOrAfter,
        cursor=cursor,
        limit=limit,
    )
    return {
        "items": [record_out(record, request.auth) for record in records],
        "nextCursor": next_cursor,
        "hasMore": has_more,
    }


# Before /{record_type}/{local_id}: ninja answers 405 on the first path that matches.
@router.post(
    "/{record_type}/lookup",
    response={200: LookupOut, 400: ErrorOut, 413: ErrorOut, 415: ErrorOut, **READ_ERRORS},
    summary="Up to 500 records this connection knows by remoteIds, in one request",
    description=(
        "Each remoteId of `remoteIds` comes back as an item in the same order, with its "
        "record, or `record: null` when this connection knows no record by it. A read: "
        "nothing is written."
    ),
)
def lookup(request, payload: BatchLookup, record_type: str = RecordType):
    remote_ids = [wire.remote_id_lookup_value(remote_id) for remote_id in payload.remoteIds]
    if bodies.available():
        found = bodies.by_remote_id(request.auth.tenant_id, request.auth, record_type, remote_ids)
        items = (
            f'{{"remoteId":{json.dumps(remote_id)},'
            f'"record":{found[remote_id][1] if remote_id in found else "null"}}}'
            for remote_id in remote_ids
        )
        return _json_text('{"items":[' + ",".join(items) + "]}")
    found = batch.lookup(request.auth.tenant, request.auth, record_type, remote_ids)
    return _json_of_many(
        request,
        {
            "items": [
                {
                    "remoteId": remote_id,
                    "record": record_out(found[remote_id], request.auth)
                    if remote_id in found
                    else None,
                }
                for remote_id in remote_ids
            ]
        },
    )


@router.post(
    "/{record_type}/batch",
    response={200: BatchWriteOut, **WRITE_ERRORS},
    summary="Create or replace up to 500 records in one request",
    description=(
        "Each item without `localId` creates a record, as `POST /{recordType}`; an item with "
        "`localId` replaces that record, as `PUT /{recordType}/{localId}` (send `remoteId`, "
        "`data` and `customData`; `ifMatch` is that item's If-Match). Every item gets its "
        "own outcome in `items`, in the request's order: `status` 201 or 200 with the "
        "`record`, or the status and `error` body the single call would give (404, 409 with "
        "`heldBy`, 412, 422...). An item's error does not stop the others. The items that "
        "pass are written in one transaction, their remote ids as one batch (History, Undo). "
        "A remoteId or localId given in two items is refused in both. 409 for the whole "
        "request with `code: bulk_change_running` as for a single write; then nothing was "
        "written."
    ),
)
def write_batch(request, payload: BatchWrite, record_type: str = RecordType):
    items = [_batch_item(item) for item in payload.items]
    results = batch.write_batch(
        request.auth.tenant, record_type, request.auth, _actor(request), items
    )
    written = {result.record_id for result in results if result.record_id}
    if bodies.available():
        built = bodies.by_record_id(request.auth.tenant_id, request.auth, written)
        items = ",".join(_batch_result_text(result, built) for result in results)
        return _json_text(f'{{"items":[{items}],"written":{len(written)}}}')
    records = {
        record.pk: record
        for record in queries.records_with_ids_and_custom_data(request.auth.tenant).filter(
            pk__in=written
        )
    }
    return _json_of_many(
        request,
        {
            "items": [_batch_result(result, records, request.auth) for result in results],
            "written": len(written),
        },
    )


def _json_of_many(request, body: dict) -> HttpResponse:
    """A batch's body, rendered as every response is (ninja's renderer) but without checking
    500 records against the response schema again: record_out, the single calls' own
    function, built them, and the check cost more than the query."""
    return api.create_response(request, body, status=200)


def _json_text(text: str) -> HttpResponse:
    """A body PostgreSQL built (records.bodies), answered as ninja answers JSON."""
    return HttpResponse(text, content_type=api.get_content_type())


def _batch_result_text(result: batch.ItemResult, built: dict) -> str:
    """`_batch_result` as JSON text, with the record's body as records.bodies built it."""
    if result.error is not None:
        return json.dumps(_batch_result(result, {}, None), cls=NinjaJSONEncoder)
    kept = f',"keptCustomData":{json.dumps(result.kept)}' if result.status == 200 else ""
    return f'{{"status":{result.status},"record":{built[result.record_id][1]}{kept}}}'


def _batch_item(item) -> batch.BatchItem:
    missing = [
        name
        for name in ("remoteId", "data", "customData")
        if item.localId is not None and name not in item.model_fields_set
    ]
    if missing:
        return batch.BatchItem(local_id=item.localId, missing=missing)
    sets_code = item.recordSource is not None and item.recordSource.sets_code
    return batch.BatchItem(
        local_id=item.localId,
        if_match=item.ifMatch,
        remote_id=item.remoteId,
        remote_ref=item.remoteRef,
        data=item.data,
        custom_data=_entries(item.customData),
        source_code=item.recordSource.code if sets_code else services.UNCHANGED,
    )


def _batch_result(result: batch.ItemResult, records: dict, connection) -> dict:
    if result.error is not None:
        return {"status": result.status, "error": domain_error_body(result.error)}
    out = {"status": result.status, "record": record_out(records[result.record_id], connection)}
    if result.status == 200:
        out["keptCustomData"] = result.kept
    return out


@router.get(
    "/{record_type}/{local_id}",
    response={200: RecordOut, **READ_ERRORS},
    summary="One record by localId",
    description="The `ETag` header is the record's version; send it back in `If-Match` on PUT.",
)
def get_record(
    request, response: HttpResponse, record_type: str = RecordType, local_id: str = LocalId
):
    record = _get_record(request, record_type, local_id)
    response["ETag"] = etag(record.version)
    return record_out(record, request.auth)


@router.post(
    "/{record_type}",
    response={201: RecordOut, **WRITE_ERRORS},
    summary="Create a record (with this connection's remoteId)",
)
def create(request, payload: RecordCreate, record_type: str = RecordType):
    record = services.create_record_with_remote_id(
        request.auth.tenant,
        record_type,
        request.auth,
        _actor(request),
        remote_id=payload.remoteId,
        remote_ref=payload.remoteRef,
        data=payload.data,
        custom_data=_entries(payload.customData),
        source_code=payload.recordSource.code if payload.recordSource else None,
    )
    return Status(201, record_out(_get_record(request, record_type, record.local_id), request.auth))


@router.put(
    "/{record_type}/{local_id}",
    response={200: RecordReplaced, **REPLACE_ERRORS},
    summary="Replace data, this connection's remoteId and the custom data it may write",
    description=(
        "Replaces `data`, this connection's `remoteId`/`remoteRef` (`null` removes them) and "
        "the custom data this connection may write: its own connection-scoped and the "
        "unscoped entries; those not sent are deleted. Entries scoped to other connections "
        "are kept untouched and listed in `keptCustomData`. To add or change a few entries, "
        "prefer `POST .../customdata`. `recordSource.code` is set only when sent (and only by "
        "the connection that created the record).\n\n"
        "Send `If-Match` with the `ETag` of your GET to write only if nobody changed the "
        "record since: otherwise 412 and nothing is written. Without `If-Match` the last "
        "writer wins."
    ),
)
def replace(
    request,
    response: HttpResponse,
    payload: RecordReplace,
    record_type: str = RecordType,
    local_id: str = LocalId,
):
    if_version = if_match_version(request)
    record = _get_record(request, record_type, local_id)
    kept = services.update_record(
        record,
        request.auth,
        _actor(request),
        data=payload.data,
        remote_id=payload.remoteId,
        remote_ref=payload.remoteRef,
        custom_data=_entries(payload.customData),
        if_version=if_version,
        source_code=(
            payload.recordSource.code
            if payload.recordSource and payload.recordSource.sets_code
            else services.UNCHANGED
        ),
    )
    record = _get_record(request, record_type, local_id)
    response["ETag"] = etag(record.version)
    return {**record_out(record, request.auth), "keptCustomData": [item.full_key for item in kept]}


@router.get("/{record_type}/{local_id}/customdata", response={200: CustomDataOut, **READ_ERRORS})
def get_custom_data(request, record_type: str = RecordType, local_id: str = LocalId):
    record = _get_record(request, record_type, local_id)
    return {"localId": record.local_id, "customData": custom_data_out(record.custom_data_rows)}


CUSTOM_DATA_EXAMPLES = {
    "wrapped": {
        "summary": "customData: entries by name",
        "value": {
            "customData": {
                "|x-wms|priority": {"type": "integer", "value": 2},
                "|x-wms|fragile": {"type": "bool", "value": True},
            }
        },
    },
    "entry": {
        "summary": "One entry",
        "value": {"moduleId": "x-wms", "key": "priority", "type": "integer", "value": 2},
    },
    "entries": {
        "summary": "A list of entries",
        "value": [
            {"moduleId": "x-wms", "key": "priority", "type": "integer", "value": 2},
            {
                "connectionId": None,
                "moduleId": "x-wms",
                "key": "weight",
                "type": "decimal",
                "value": "1.50",
            },
        ],
    },
    "byName": {
        "summary": "The customData object itself (as GET returns it)",
        "value": {
            "|x-wms|priority": {
                "connectionId": "",
                "moduleId": "x-wms",
                "key": "priority",
                "type": "integer",
                "value": 2,
            }
        },
    },
}


@router.post(
    "/{record_type}/{local_id}/customdata",
    response={200: CustomDataOut, **WRITE_ERRORS},
    summary="Upsert custom data entries (update where the key exists, else create)",
    description=(
        "Entries not sent are left as they are. A connection may write its own "
        "connection-scoped and unscoped entries; one scoped to another connection is 403 "
        "and nothing is written.\n\n"
        'The body is any of: `{"customData": {...}}`; one entry `{connectionId?, moduleId, '
        "key, type, value}`; a list of such entries; or the customData object itself, keyed "
        "`connectionId|moduleId|key` as GET returns it. All are checked alike, and errors name "
        "the entry the same way in each (e.g. `customData.|x-wms|priority.value`). An object "
        "with `customData` is the first shape, one with any of the entry's fields the second."
    ),
    openapi_extra={
        "requestBody": {"content": {"application/json": {"examples": CUSTOM_DATA_EXAMPLES}}}
    },
)
def upsert_custom_data(
    request, payload: CustomDataUpsertBody, record_type: str = RecordType, local_id: str = LocalId
):
    record = _get_record(request, record_type, local_id)
    services.upsert_custom_data_for_connection(
        record, _entries(payload.customData), request.auth, _actor(request)
    )
    record = _get_record(request, record_type, local_id)
    return {"localId": record.local_id, "customData": custom_data_out(record.custom_data_rows)}


def _entries(custom_data) -> dict:
    return {name: entry.model_dump() for name, entry in custom_data.items()}


api.add_router("/", router)

"""The JSON API for API connections, at /api/v1/ (django-ninja).

Thin on purpose: authentication, (de)serialisation and error shapes live here; every rule is
in records/services.py, which the HTML views call too. A request acts as one API connection
(HTTP Basic: connection_id + API key) on that connection's tenant only.
"""

from __future__ import annotations

from datetime import datetime

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse
from ninja import NinjaAPI, Path, Query, Router, Status
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.openapi.docs import Swagger
from ninja.security import HttpBasicAuth

from common.errors import DomainError, InvalidValue, error_body
from integrations import apikeys, throttling

from . import services
from .errors import BulkChangeRunning, Conflict, VersionMismatch
from .schemas import (
    RECORD_TYPE_DESCRIPTION,
    RECORD_TYPE_REGEX,
    CustomDataOut,
    CustomDataUpsertBody,
    ErrorOut,
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
another tenant's), 409 a remoteId another record holds (`heldBy.localId` names it), or with
`code: bulk_change_running` a bulk change (a delete-all, an import...) of these records is being
written: nothing was written, try again after `Retry-After` seconds; 413 a body over the size
limit; 415 a write whose body is not sent as `Content-Type: application/json`; 422 invalid input
with field errors, 429 too many failed authentications for this connectionId or from this
address (wait `Retry-After` seconds).

**Read-only fields** in request bodies (`localId`, `remoteIdMap`, `remoteRefMap`,
`lastModified`, ...) are ignored, never applied: a connection sets only its own `remoteId`.
Of `recordSource` (who created the record) only `code` is read; the rest is ignored.
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


@api.exception_handler(DomainError)
def domain_error(request, exc: DomainError):
    errors = []
    if exc.field:
        errors.append({"field": wire_field(exc.field), "message": exc.message, "code": exc.code})
    held_by = None
    if isinstance(exc, Conflict) and exc.holder is not None:
        held_by = {"localId": exc.holder.local_id, "recordType": exc.holder.record_type}
    code = "forbidden" if exc.status == 403 and exc.code == "invalid" else exc.code
    response = api.create_response(
        request, error_body(exc.message, code, errors, held_by), status=exc.status
    )
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
    value = request.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    value = value.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidValue(
            'If-Match must be the ETag of the record you read, e.g. "7" (its version).',
            field="If-Match",
        )
    return int(value)


LocalId = Path(..., description="The record's localId (32 lowercase hex).")


def _get_record(request, record_type: str, local_id: str):
    record = services.record_by_local_id.first(
        tenant_id=request.auth.tenant_id, record_type=record_type, local_id=local_id
    )
    if record is None:
        raise Http404
    return record


def _actor(request):
    return services.Actor.for_connection(request.auth)


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
    remote_id = services.remote_id_lookup_value(remoteId)
    record = services.record_by_remote_id.first(
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
    records, has_more = services.changed_records(
        request.auth.tenant,
        record_type,
        since=modifiedAtOrAfter,
        cursor=cursor,
        limit=limit,
    )
    next_cursor = cursor
    if records:
        next_cursor = services.encode_cursor(records[-1].last_modified, records[-1].local_id)
    return {
        "items": [record_out(record, request.auth) for record in records],
        "nextCursor": next_cursor,
        "hasMore": has_more,
    }


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

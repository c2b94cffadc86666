"""The API's record bodies as JSON text built by PostgreSQL, for the connectors' hot reads.

`records.schemas.record_out` builds a record's body in Python from a model object; for a
lookup of 500 records that was most of the request (model objects, the JSON rows decoded,
the body encoded again): about 0.15 ms of CPU per record, so 2 cores answered ~13,000
records/s. Here PostgreSQL builds the same body, as text, in the query that finds the
records, and Python only joins the texts: the batch lookup, the batch write's answer and the
single read by remote id use it on PostgreSQL. Elsewhere (SQLite) they use record_out.

The two must agree to the byte of meaning: tests/api/test_bodies.py compares them on records
of every shape (every recordSource kind, custom data of every type and scope, timestamps with
and without fractions, empty and odd data).
"""

from __future__ import annotations

from django.db import connection as db_connection

from common.prepared import statement_cursor
from integrations.models import Connection, Connector

from .models import CustomData, Record, RemoteId

RECORD = Record._meta.db_table
REMOTE_ID = RemoteId._meta.db_table
CUSTOM_DATA = CustomData._meta.db_table
CONNECTION = Connection._meta.db_table
CONNECTOR = Connector._meta.db_table

# DjangoJSONEncoder's datetime (what ninja renders): UTC with "Z", milliseconds only when the
# time has a fraction (truncated, not rounded).
_LAST_MODIFIED = """CASE WHEN date_trunc('second', r.last_modified) = r.last_modified
    THEN to_char(r.last_modified AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    ELSE to_char(r.last_modified AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END"""

# Record.source: "kind/ident"; anything else is the system's, named by the whole value.
_KIND = "split_part(r.record_source, '/', 1)"
_IDENT = "substr(r.record_source, strpos(r.record_source, '/') + 1)"
_IS = f"strpos(r.record_source, '/') > 0 AND {_IDENT} <> '' AND {_KIND}"
_RECORD_SOURCE = f"""CASE
    WHEN {_IS} = 'connection' THEN json_build_object(
        'type', 'connection', 'connectionType', scn.code, 'connectionId', {_IDENT},
        'connectionName', sc.name, 'code', NULLIF(r.source_code, ''))
    WHEN {_IS} = 'user' THEN json_build_object('type', 'user', 'login', {_IDENT})
    WHEN {_IS} = 'system' THEN json_build_object('type', 'system', 'name', {_IDENT})
    ELSE json_build_object('type', 'system', 'name', COALESCE(NULLIF(r.record_source, ''), 'unknown'))
    END"""  # noqa: E501

# Our table names only; {key}, {own_join} and {where} are filled in below, values are parameters.
# Our table names only: {key}, {own_join} and {where} are filled in below; values are
# parameters.
_SELECT = f"""SELECT {{key}}, r.version, json_build_object(
    'localId', r.local_id,
    'recordType', r.record_type,
    'remoteId', own.remote_id,
    'remoteRef', own.remote_ref,
    'remoteIdMap', COALESCE(ids.id_map, '{{{{}}}}'::json),
    'remoteRefMap', COALESCE(ids.ref_map, '{{{{}}}}'::json),
    'customData', COALESCE(cd.entries, '{{{{}}}}'::json),
    'data', CASE WHEN jsonb_typeof(r.data) = 'object' THEN r.data ELSE '{{{{}}}}'::jsonb END,
    'lastModified', {_LAST_MODIFIED},
    'lastModifiedBy', r.last_modified_by,
    'recordSource', {_RECORD_SOURCE},
    'version', r.version)::text
FROM {RECORD} r
{{own_join}} JOIN {REMOTE_ID} own
    ON own.tenant_id = r.tenant_id AND own.record_id = r.id AND own.connection_id = %(connection)s
LEFT JOIN LATERAL (
    SELECT json_object_agg(c.connection_id, ri.remote_id ORDER BY ri.id) AS id_map,
           json_object_agg(c.connection_id, ri.remote_ref ORDER BY ri.id) AS ref_map
    FROM {REMOTE_ID} ri JOIN {CONNECTION} c ON c.id = ri.connection_id
    WHERE ri.tenant_id = %(tenant)s AND ri.record_id = r.id
) ids ON true
LEFT JOIN LATERAL (
    SELECT json_object_agg(
        COALESCE(c.connection_id, '') || '|' || d.module_id || '|' || d.key,
        json_build_object(
            'connectionId', COALESCE(c.connection_id, ''), 'moduleId', d.module_id,
            'key', d.key, 'type', d.type, 'value', d.value)
        ORDER BY COALESCE(c.connection_id, '') COLLATE "C", d.module_id COLLATE "C",
                 d.key COLLATE "C") AS entries
    FROM {CUSTOM_DATA} d LEFT JOIN {CONNECTION} c ON c.id = d.connection_id
    WHERE d.tenant_id = %(tenant)s AND d.record_id = r.id
) cd ON true
LEFT JOIN {CONNECTION} sc ON sc.id = r.source_connection_id
LEFT JOIN {CONNECTOR} scn ON scn.id = sc.connector_id
WHERE r.tenant_id = %(tenant)s AND {{where}}"""  # noqa: S608
# The lateral subqueries name the tenant as a value, not as r.tenant_id: Citus routes a query
# to one shard only when every distributed table in it is pinned to the tenant by a constant
# (r.tenant_id = ri.tenant_id across LATERAL is not carried over: all 32 shards, 42 ms
# instead of 3 ms for one record on the bench cluster).

BY_REMOTE_ID = _SELECT.format(
    key="own.remote_id",
    own_join="",
    # All four columns of the connection's unique index: one probe per id.
    where="own.tenant_id = %(tenant)s AND own.record_type = %(record_type)s "
    "AND own.remote_id = ANY(%(keys)s)",
)
BY_RECORD_ID = _SELECT.format(key="r.id", own_join="LEFT", where="r.id = ANY(%(keys)s)")
# (a record's type never changes: the ids name the records)


def available() -> bool:
    """Whether the database builds the bodies (PostgreSQL); elsewhere use record_out."""
    return db_connection.vendor == "postgresql"


def _bodies(sql: str, tenant_id: int, connection_pk: int, keys, **more) -> dict:
    params = {"tenant": tenant_id, "connection": connection_pk, "keys": list(keys), **more}
    with statement_cursor() as cursor:
        cursor.execute(sql, params)
        return {key: (version, body) for key, version, body in cursor.fetchall()}


def by_remote_id(tenant_id: int, connection, record_type: str, remote_ids) -> dict:
    """{remote id: (version, body)} of the records `connection` knows by `remote_ids`."""
    return _bodies(BY_REMOTE_ID, tenant_id, connection.pk, remote_ids, record_type=record_type)


def by_record_id(tenant_id: int, connection, record_ids) -> dict:
    """{record pk: (version, body)} of the records, as `connection` sees them."""
    return _bodies(BY_RECORD_ID, tenant_id, connection.pk, record_ids)

"""The record bodies PostgreSQL builds (records.bodies) say exactly what record_out says.

The batch lookup, the batch write's answer and the single read by remote id send the text
PostgreSQL built; the read by local id (and everything on SQLite) sends record_out's. A
connector must not be able to tell them apart: records of every shape are compared here.
"""

import json
from datetime import UTC, datetime

import pytest
from django.db import connection
from ninja.responses import NinjaJSONEncoder

from records import bodies
from records.queries import records_with_ids_and_custom_data
from records.schemas import record_out
from tests.factories import ConnectionFactory, CustomDataFactory, RecordFactory, RemoteIdFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def at(microsecond: int) -> datetime:
    return datetime(2026, 3, 14, 15, 9, 26, microsecond, tzinfo=UTC)


@pytest.fixture
def records(world, warehouse):
    """Records of every shape the API can send, each known to the warehouse as WH-<n>."""
    gone = ConnectionFactory(tenant=world.tenant, name="Old shop")
    shapes = [
        # (record_source, source connection, code, data, last_modified)
        (
            f"connection/{warehouse.connection_id}",
            warehouse,
            "store-2",
            {"é": [1, {"b": None}]},
            at(123456),
        ),  # noqa: E501
        (f"connection/{gone.connection_id}", None, "", {}, at(0)),
        ("user/anna", None, "", {"total": "1.00"}, at(500)),
        ("system/sync", None, "", [], at(999999)),
        ("weird", None, "", "text", at(1000)),
        ("", None, "", 7, at(0)),
        ("user/", None, "", {"x": 1.5}, at(1)),
    ]
    made = []
    for n, (source, source_connection, code, data, modified) in enumerate(shapes):
        record = RecordFactory(
            tenant=world.tenant,
            record_type="order",
            record_source=source,
            source_connection=source_connection,
            source_code=code,
            data=data,
        )
        type(record).objects.filter(pk=record.pk).update(last_modified=modified)
        RemoteIdFactory(record=record, connection=warehouse, remote_id=f"WH-{n}", remote_ref="")
        made.append(record)
    first = made[0]
    RemoteIdFactory(record=first, connection=world.shop, remote_id="5001", remote_ref="#5001")
    RemoteIdFactory(record=first, connection=world.erp, remote_id="E1", remote_ref="INV-1")
    for key, kind, value, scope in [
        ("s", "string", "hello ✓", warehouse),
        ("b", "bool", True, None),
        ("i", "integer", 42, warehouse),
        ("d", "decimal", "3.14", None),
        ("j", "json", {"nested": [1, "two"]}, world.shop),
        ("n", "string", None, None),
    ]:
        CustomDataFactory(record=first, key=key, type=kind, value=value, connection=scope)
    CustomDataFactory(record=made[1], module_id="m-2", key="Ä k", value="v")
    # Known to the shop only: the warehouse sees it without an own id.
    RemoteIdFactory(
        record=RecordFactory(tenant=world.tenant, record_type="order"),
        connection=world.shop,
        remote_id="5999",
    )
    return made


def python_body(record, warehouse) -> dict:
    return json.loads(json.dumps(record_out(record, warehouse), cls=NinjaJSONEncoder))


def test_every_shape_is_the_same_body_as_record_out(world, warehouse, records):
    python = {
        record.pk: python_body(record, warehouse)
        for record in records_with_ids_and_custom_data(world.tenant).filter(record_type="order")
    }
    assert len(python) == len(records) + 1

    built = bodies.by_record_id(world.tenant.pk, warehouse, python)

    assert {pk: json.loads(body) for pk, (_, body) in built.items()} == python
    assert {pk: version for pk, (version, _) in built.items()} == {
        pk: body["version"] for pk, body in python.items()
    }
    assert python[records[0].pk]["lastModified"] == "2026-03-14T15:09:26.123Z"
    assert python[records[1].pk]["lastModified"] == "2026-03-14T15:09:26Z"


def test_by_remote_id_finds_this_connections_ids_of_the_type_only(world, warehouse, records):
    found = bodies.by_remote_id(world.tenant.pk, warehouse, "order", ["WH-0", "WH-3", "5999"])
    assert set(found) == {"WH-0", "WH-3"}
    assert bodies.by_remote_id(world.tenant.pk, warehouse, "invoice", ["WH-0"]) == {}
    assert bodies.by_remote_id(world.other_tenant.pk, warehouse, "order", ["WH-0"]) == {}


def test_the_api_sends_the_same_body_by_every_read(api, records):
    by_local_id = api.get(f"order/{records[0].local_id}")  # record_out
    by_remote_id = api.get("order/by-remote-id", {"remoteId": "WH-0"})  # records.bodies
    looked_up = api.post("order/lookup", {"remoteIds": ["WH-0"]}).json()["items"][0]["record"]

    assert by_remote_id.json() == by_local_id.json() == looked_up
    assert by_remote_id["ETag"] == by_local_id["ETag"]
    assert by_remote_id["Content-Type"] == by_local_id["Content-Type"]


def test_the_batch_write_answers_with_the_records_as_written(api, records):
    record = records[2]
    body = {"localId": record.local_id, "remoteId": "WH-2", "data": {"n": 1}, "customData": {}}

    items = api.post("order/batch", {"items": [body]}).json()["items"]

    assert items[0]["status"] == 200
    assert items[0]["record"] == api.get(f"order/{record.local_id}").json()
    assert items[0]["record"]["data"] == {"n": 1}
    assert connection.vendor == "postgresql"

"""Batch lookups and writes: up to 500 records per request, each item as its single call."""

import pytest
from django.db import connection

from records.models import AuditEntry, Batch, BatchChange, Record, RemoteId
from tests.factories import RecordFactory, RemoteIdFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(world, warehouse):
    record = RecordFactory(tenant=world.tenant, record_type="order", data={"total": "1.00"})
    RemoteIdFactory(record=record, connection=warehouse, remote_id="WH-1", remote_ref="r1")
    RemoteIdFactory(record=record, connection=world.shop, remote_id="5001")
    return record


def single_error(api, method, path, body, **headers):
    response = getattr(api, method)(path, body, **headers)
    return response.status_code, response.json()


# --- lookup ---------------------------------------------------------------------------------


def test_lookup_returns_each_remote_id_in_order_with_its_record_or_null(api, order, warehouse):
    other = RecordFactory(tenant=order.tenant, record_type="order")
    RemoteIdFactory(record=other, connection=warehouse, remote_id="WH-2")

    response = api.post("order/lookup", {"remoteIds": ["WH-2", "nope", "WH-1"]})

    assert response.status_code == 200, response.json()
    items = response.json()["items"]
    assert [item["remoteId"] for item in items] == ["WH-2", "nope", "WH-1"]
    assert items[0]["record"]["localId"] == other.local_id
    assert items[1]["record"] is None
    # The same record body the single by-remote-id call gives.
    single = api.get("order/by-remote-id", {"remoteId": "WH-1"}).json()
    assert items[2]["record"] == single


def test_lookup_sees_only_this_connections_ids_of_this_type_and_tenant(
    api, other_api, order, world
):
    assert api.post("order/lookup", {"remoteIds": ["5001"]}).json()["items"][0]["record"] is None
    assert api.post("invoice/lookup", {"remoteIds": ["WH-1"]}).json()["items"][0]["record"] is None
    their = other_api.post("order/lookup", {"remoteIds": ["WH-1"]}).json()
    assert their["items"][0]["record"] is None


@pytest.mark.parametrize("remote_ids", [[], ["x"] * 501])
def test_lookup_takes_1_to_500_ids(api, remote_ids):
    response = api.post("order/lookup", {"remoteIds": remote_ids})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "remoteIds"


# --- writes -----------------------------------------------------------------------------------


def test_a_batch_creates_and_replaces_with_one_outcome_per_item(api, order, warehouse):
    response = api.post(
        "order/batch",
        {
            "items": [
                {"remoteId": "WH-10", "data": {"n": 10}},
                {
                    "localId": order.local_id,
                    "remoteId": "WH-1",
                    "remoteRef": "r1-new",
                    "data": {"total": "2.00"},
                    "customData": {},
                },
                {"remoteId": "WH-11", "customData": {"|x-wms|p": {"type": "integer", "value": 3}}},
            ]
        },
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["written"] == 3
    created, replaced, with_custom = body["items"]
    assert created["status"] == 201
    assert created["record"]["remoteId"] == "WH-10"
    assert created["record"]["data"] == {"n": 10}
    assert created["record"]["version"] == 1
    assert replaced["status"] == 200
    assert replaced["record"]["remoteRef"] == "r1-new"
    assert replaced["record"]["data"] == {"total": "2.00"}
    assert replaced["record"]["version"] == order.version + 1  # one bump for the whole item
    assert replaced["keptCustomData"] == []
    assert with_custom["record"]["customData"]["|x-wms|p"]["value"] == 3
    # The ids went through the engine as one batch: History and Undo see it.
    batch = Batch.objects.get(kind=Batch.Kind.API)
    assert BatchChange.objects.filter(batch=batch, change="added").count() == 3
    assert set(
        RemoteId.objects.filter(connection=warehouse).values_list("remote_id", flat=True)
    ) == {"WH-1", "WH-10", "WH-11"}


def test_an_items_error_is_the_single_calls_and_does_not_stop_the_others(
    api, order, warehouse, world
):
    stale = api.get(f"order/{order.local_id}")["ETag"]
    api.put(
        f"order/{order.local_id}",
        {"remoteId": "WH-1", "data": {"total": "5.00"}, "customData": {}},
    )
    holder_error = single_error(api, "post", "order", {"remoteId": "WH-1"})
    stale_error = single_error(
        api,
        "put",
        f"order/{order.local_id}",
        {"remoteId": "WH-9", "data": {}, "customData": {}},
        If_Match=stale,
    )
    unknown_error = single_error(
        api, "put", "order/" + "0" * 32, {"remoteId": None, "data": {}, "customData": {}}
    )
    invalid_error = single_error(api, "post", "order", {"remoteId": "bad\x00id"})

    response = api.post(
        "order/batch",
        {
            "items": [
                {"remoteId": "WH-1"},
                {
                    "localId": order.local_id,
                    "ifMatch": stale,
                    "remoteId": "WH-9",
                    "data": {},
                    "customData": {},
                },
                {"localId": "0" * 32, "remoteId": None, "data": {}, "customData": {}},
                {"remoteId": "bad\x00id"},
                {"remoteId": "WH-20"},
            ]
        },
    )

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["status"] for item in items] == [409, 412, 404, 422, 201]
    assert (items[0]["status"], items[0]["error"]) == holder_error
    assert (items[1]["status"], items[1]["error"]) == stale_error
    assert items[2]["error"]["code"] == unknown_error[1]["code"] == "not_found"
    assert (items[3]["status"], items[3]["error"]) == invalid_error
    assert items[4]["record"]["remoteId"] == "WH-20"
    assert response.json()["written"] == 1
    order.refresh_from_db()
    assert order.data == {"total": "5.00"}  # the stale item wrote nothing


def test_a_remote_id_in_two_items_is_refused_in_both(api):
    response = api.post("order/batch", {"items": [{"remoteId": "A"}, {"remoteId": "A"}]})
    items = response.json()["items"]
    assert [item["status"] for item in items] == [422, 422]
    assert "more than one item (0, 1)" in items[0]["error"]["detail"]
    assert items[0]["error"]["errors"][0]["field"] == "remoteId"
    assert not Record.objects.exists()


def test_an_id_another_item_holds_is_refused_as_the_single_put_would(api, order, warehouse, world):
    other = RecordFactory(tenant=world.tenant, record_type="order")
    RemoteIdFactory(record=other, connection=warehouse, remote_id="WH-2")
    body = {"data": {}, "customData": {}}

    response = api.post(
        "order/batch",
        {
            "items": [
                {"localId": order.local_id, "remoteId": "WH-2", **body},
                {"localId": other.local_id, "remoteId": "WH-1", **body},
            ]
        },
    )

    items = response.json()["items"]
    # Each id is held by the other record when the batch comes: no swap, as single PUTs.
    assert [item["status"] for item in items] == [409, 409]


def test_a_replace_must_send_remote_id_data_and_custom_data(api, order):
    response = api.post("order/batch", {"items": [{"localId": order.local_id, "data": {}}]})
    error = response.json()["items"][0]["error"]
    assert error["errors"][0] == {
        "field": "remoteId",
        "message": error["detail"],
        "code": "required",
    }


def test_a_batch_of_over_500_items_is_refused_whole(api):
    response = api.post("order/batch", {"items": [{}] * 501})
    assert response.status_code == 422
    assert not Record.objects.exists()


def test_creates_are_audited_as_single_creates_and_ids_as_one_batch(api, warehouse):
    api.post("order/batch", {"items": [{"remoteId": f"WH-{n}"} for n in range(3)]})
    actor = f"connection/{warehouse.connection_id}"
    assert AuditEntry.objects.filter(action="record_create", actor=actor).count() == 3
    batch_entry = AuditEntry.objects.get(action="remote_id_set")
    assert batch_entry.batch.row_count == 3
    assert "API batch: 3 order ids of Warehouse API" in batch_entry.summary


def test_a_replace_that_keeps_the_ids_marks_only_the_changed_records_changed_once(
    api, order, warehouse, world
):
    """The data and the stamp are one UPDATE on PostgreSQL (records.audit.
    update_and_mark_changed): each changed record gets one version bump, the connection as
    last modifier and the feed's stamp (change_xid); an unchanged one gets nothing."""
    same = RecordFactory(tenant=world.tenant, record_type="order", data={"total": "9.00"})
    RemoteIdFactory(record=same, connection=warehouse, remote_id="WH-2")
    custom = RecordFactory(tenant=world.tenant, record_type="order", data={"total": "3.00"})
    RemoteIdFactory(record=custom, connection=warehouse, remote_id="WH-3")
    pks = [order.pk, same.pk, custom.pk]
    Record.objects.filter(pk__in=pks).update(change_xid=0)  # the test is one transaction
    before = {r.pk: r for r in Record.objects.filter(pk__in=pks)}

    def item(record, remote_id, data, custom_data=None):
        return {
            "localId": record.local_id,
            "remoteId": remote_id,
            "data": data,
            "customData": custom_data or {},
        }

    response = api.post(
        "order/batch",
        {
            "items": [
                item(order, "WH-1", {"total": "2.00"}),
                item(same, "WH-2", {"total": "9.00"}),
                item(
                    custom, "WH-3", {"total": "3.00"}, {"|x-wms|p": {"type": "integer", "value": 3}}
                ),
            ]
        },
    )

    assert response.status_code == 200, response.json()
    after = {r.pk: r for r in Record.objects.filter(pk__in=pks)}
    for changed in (order, custom):
        assert after[changed.pk].version == before[changed.pk].version + 1
        assert after[changed.pk].last_modified_by == f"connection/{warehouse.connection_id}"
        assert after[changed.pk].last_modified > before[changed.pk].last_modified
    assert after[order.pk].data == {"total": "2.00"}
    assert after[custom.pk].data == {"total": "3.00"}
    assert after[same.pk].version == before[same.pk].version
    assert after[same.pk].last_modified == before[same.pk].last_modified
    assert AuditEntry.objects.filter(record=order, action="record_update").count() == 1
    assert not AuditEntry.objects.filter(record=same).exists()
    if connection.vendor == "postgresql":  # the feed's stamp: the writing transaction
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            xid = cursor.fetchone()[0]
        assert [after[pk].change_xid for pk in pks] == [xid, 0, xid]

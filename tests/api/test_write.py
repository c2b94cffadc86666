"""An API connection creates and replaces records; it writes only its own remote id."""

import pytest

from records.models import AuditEntry, Record, RemoteId
from tests.factories import RecordFactory, RemoteIdFactory

pytestmark = pytest.mark.django_db


def test_create_a_record_with_a_remote_id_data_and_custom_data(api, warehouse):
    response = api.post(
        "order",
        {
            "remoteId": " WH-100 ",
            "remoteRef": "Pick 100",
            "data": {"total": "99.00", "lines": [{"sku": "A"}]},
            "customData": {"|x-wms|priority": {"type": "integer", "value": 2}},
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    record = Record.objects.get(local_id=body["localId"])
    assert body["recordType"] == "order"
    assert body["remoteId"] == "WH-100"
    assert body["remoteRef"] == "Pick 100"
    assert body["remoteIdMap"] == {warehouse.connection_id: "WH-100"}
    assert body["data"] == {"total": "99.00", "lines": [{"sku": "A"}]}
    assert body["customData"]["|x-wms|priority"]["value"] == 2
    actor = f"connection/{warehouse.connection_id}"
    assert body["lastModifiedBy"] == actor
    assert body["recordSource"] == {
        "type": "connection",
        "connectionType": "api",
        "connectionId": warehouse.connection_id,
        "connectionName": "Warehouse API",
        "code": None,
    }
    actions = set(AuditEntry.objects.filter(record=record).values_list("action", "actor"))
    assert actions == {
        ("record_create", actor),
        ("remote_id_set", actor),
        ("custom_data_set", actor),
    }


def test_create_with_nothing_but_the_type(api):
    response = api.post("invoice", {})
    assert response.status_code == 201
    assert response.json()["remoteId"] is None


def test_a_remote_id_another_record_holds_is_409_naming_that_record(api, warehouse, world):
    holder = RecordFactory(tenant=world.tenant, record_type="order")
    RemoteIdFactory(record=holder, connection=warehouse, remote_id="WH-1")
    response = api.post("order", {"remoteId": "WH-1", "data": {"x": 1}})
    assert response.status_code == 409
    body = response.json()
    assert holder.local_id in body["detail"]
    assert body["code"] == "conflict"
    assert body["heldBy"] == {"localId": holder.local_id, "recordType": "order"}
    assert body["errors"][0]["field"] == "remoteId"
    assert Record.objects.count() == 1


def test_the_same_remote_id_is_fine_for_another_type_or_connection(api, warehouse, world):
    RemoteIdFactory(
        record=RecordFactory(tenant=world.tenant, record_type="customer"),
        connection=warehouse,
        remote_id="WH-1",
    )
    RemoteIdFactory(
        record=RecordFactory(tenant=world.tenant, record_type="order"),
        connection=world.shop,
        remote_id="WH-1",
    )
    assert api.post("order", {"remoteId": "WH-1"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"remoteId": ""}, "remoteId"),
        ({"remoteId": "   "}, "remoteId"),
        ({"remoteId": "a\tb"}, "remoteId"),
        ({"remoteId": "x" * 256}, "remoteId"),
        ({"remoteId": 1234}, "remoteId"),
        ({"remoteRef": "without id"}, "remoteRef"),
        ({"remoteId": "1", "remoteRef": "a\nb"}, "remoteRef"),
        ({"data": []}, "data"),
        ({"data": {"a": "nul\u0000"}}, "data"),
        (
            {"customData": {"|x-a|n": {"type": "integer", "value": "4.2"}}},
            "customData.|x-a|n.value",
        ),
        ({"customData": {"|x-a|n": {"type": "float", "value": 1}}}, "customData.|x-a|n.type"),
        ({"customData": {"x-a|n": {"type": "string", "value": "v"}}}, "customData.x-a|n"),
        ({"customData": {"|x-a|": {"type": "string", "value": "v"}}}, "customData.|x-a|.key"),
        (
            {"customData": {"|x-a|n": {"type": "string", "value": "v", "moduleId": "x-b"}}},
            "customData.|x-a|n.moduleId",
        ),
        (
            {"customData": {f"{'0' * 32}|x-a|n": {"type": "string", "value": "v"}}},
            f"customData.{'0' * 32}|x-a|n.connectionId",
        ),
    ],
)
def test_invalid_input_is_422_with_the_field_and_nothing_is_created(api, body, field):
    response = api.post("order", body)
    assert response.status_code == 422, response.json()
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not Record.objects.exists()


def test_a_body_that_is_not_json_is_400_in_the_error_shape(api):
    response = api.client.post("/api/v1/order", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert not Record.objects.exists()


def test_remote_id_map_in_a_request_is_ignored(api, world, warehouse):
    response = api.post(
        "order",
        {"remoteId": "WH-7", "remoteIdMap": {world.shop.connection_id: "stolen"}},
    )
    assert response.status_code == 201
    assert response.json()["remoteIdMap"] == {warehouse.connection_id: "WH-7"}
    assert not RemoteId.objects.filter(connection=world.shop).exists()


@pytest.fixture
def order(world, warehouse):
    record = RecordFactory(tenant=world.tenant, record_type="order", data={"total": "1.00"})
    RemoteIdFactory(record=record, connection=warehouse, remote_id="WH-1", remote_ref="r1")
    RemoteIdFactory(record=record, connection=world.shop, remote_id="5001")
    return record


def replace_body(**changes):
    return {
        "remoteId": "WH-1",
        "remoteRef": "r1",
        "data": {"total": "1.00"},
        "customData": {},
        **changes,
    }


def test_put_replaces_data_and_own_remote_id(api, order, world, warehouse):
    response = api.put(
        f"order/{order.local_id}",
        replace_body(remoteId="WH-2", remoteRef="r2", data={"total": "2.00"}),
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["remoteId"] == "WH-2"
    assert body["remoteRef"] == "r2"
    assert body["data"] == {"total": "2.00"}
    assert body["remoteIdMap"] == {
        warehouse.connection_id: "WH-2",
        world.shop.connection_id: "5001",
    }
    assert body["lastModifiedBy"] == f"connection/{warehouse.connection_id}"
    assert body["version"] > order.version
    edits = AuditEntry.objects.filter(record=order).order_by("id")
    assert [e.action for e in edits] == ["record_update", "remote_id_set"]
    assert edits[1].before["remote_id"] == "WH-1"
    assert edits[1].after["remote_id"] == "WH-2"


def test_put_of_what_get_returned_changes_nothing(api, order):
    current = api.get(f"order/{order.local_id}").json()
    response = api.put(f"order/{order.local_id}", current)
    assert response.status_code == 200
    assert response.json()["lastModified"] == current["lastModified"]
    assert not AuditEntry.objects.exists()


def test_put_with_if_match_of_the_version_read_writes_and_gives_the_new_etag(api, order):
    read = api.get(f"order/{order.local_id}")
    assert read["ETag"] == f'"{read.json()["version"]}"'

    response = api.put(
        f"order/{order.local_id}", replace_body(data={"total": "3.00"}), If_Match=read["ETag"]
    )

    assert response.status_code == 200, response.json()
    assert response["ETag"] == f'"{response.json()["version"]}"' != read["ETag"]
    order.refresh_from_db()
    assert order.data == {"total": "3.00"}


def test_put_with_a_stale_if_match_is_412_and_writes_nothing(api, order, world):
    read = api.get(f"order/{order.local_id}")
    # Someone else changes the record after our GET.
    assert (
        api.put(f"order/{order.local_id}", replace_body(data={"total": "2.00"})).status_code == 200
    )

    response = api.put(
        f"order/{order.local_id}", replace_body(data={"total": "9.99"}), If_Match=read["ETag"]
    )

    assert response.status_code == 412
    assert response.json()["code"] == "version_mismatch"
    assert "GET it again" in response.json()["detail"]
    order.refresh_from_db()
    assert order.data == {"total": "2.00"}
    assert response["ETag"] == f'"{order.version}"'
    assert AuditEntry.objects.filter(record=order, after={"data": {"total": "9.99"}}).count() == 0


@pytest.mark.parametrize("header", ["*", None])
def test_put_without_a_version_precondition_writes(api, order, header):
    headers = {"If_Match": header} if header else {}
    response = api.put(f"order/{order.local_id}", replace_body(data={"n": 1}), **headers)
    assert response.status_code == 200


@pytest.mark.parametrize("header", ['W/"{v}"', "{v}"])
def test_if_match_accepts_weak_and_bare_versions(api, order, header):
    header = header.format(v=order.version)
    response = api.put(f"order/{order.local_id}", replace_body(data={"n": 2}), If_Match=header)
    assert response.status_code == 200


def test_a_malformed_if_match_is_422_and_writes_nothing(api, order):
    response = api.put(f"order/{order.local_id}", replace_body(data={"n": 3}), If_Match='"abc"')
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "If-Match"
    order.refresh_from_db()
    assert order.data == {"total": "1.00"}


def test_by_remote_id_gives_the_etag_too(api, order):
    response = api.get("order/by-remote-id", {"remoteId": "WH-1"})
    assert response["ETag"] == f'"{order.version}"'


def test_put_with_remote_id_null_removes_only_this_connections_id(api, order, world):
    response = api.put(f"order/{order.local_id}", replace_body(remoteId=None, remoteRef=None))
    assert response.status_code == 200
    assert response.json()["remoteIdMap"] == {world.shop.connection_id: "5001"}
    entry = AuditEntry.objects.get(action="remote_id_set")
    assert entry.after is None


def test_put_must_say_remote_id_data_and_custom_data(api, order):
    response = api.put(f"order/{order.local_id}", {"data": {}})
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"remoteId", "customData"}


def test_put_ignores_remote_id_map_and_never_touches_other_connections_ids(api, order, world):
    body = replace_body(remoteIdMap={world.shop.connection_id: "changed"}, localId="f" * 32)
    assert api.put(f"order/{order.local_id}", body).status_code == 200
    assert RemoteId.objects.get(connection=world.shop).remote_id == "5001"
    assert Record.objects.filter(local_id=order.local_id).exists()


def test_put_to_a_remote_id_another_record_holds_is_409(api, order, warehouse, world):
    other = RecordFactory(tenant=world.tenant, record_type="order")
    RemoteIdFactory(record=other, connection=warehouse, remote_id="WH-9")
    response = api.put(f"order/{order.local_id}", replace_body(remoteId="WH-9", data={"a": 1}))
    assert response.status_code == 409
    assert response.json()["heldBy"]["localId"] == other.local_id
    order.refresh_from_db()
    assert order.data == {"total": "1.00"}  # all or nothing


def test_put_on_unknown_or_other_tenants_record_is_404(api, other_api, order):
    assert api.put(f"order/{'0' * 32}", replace_body()).status_code == 404
    assert other_api.put(f"order/{order.local_id}", replace_body()).status_code == 404
    assert RemoteId.objects.get(record=order, remote_id="WH-1")

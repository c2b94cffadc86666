"""Custom data over the API: upsert with POST .../customdata, replace with PUT; a connection
writes only its own and unscoped entries."""

import pytest

from records.models import AuditEntry, CustomData
from tests.factories import CustomDataFactory, RecordFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(world, warehouse):
    record = RecordFactory(tenant=world.tenant, record_type="order")
    CustomDataFactory(record=record, module_id="x-support", key="note", value="old")
    CustomDataFactory(
        record=record, connection=world.erp, module_id="fortnox", key="series", value="B"
    )
    CustomDataFactory(record=record, connection=warehouse, module_id="wms", key="bin", value="A-1")
    return record


def upsert(api, record, entries):
    return api.post(f"order/{record.local_id}/customdata", {"customData": entries})


def test_upsert_updates_existing_keys_and_creates_new_ones(api, order, warehouse):
    own = warehouse.connection_id
    response = upsert(
        api,
        order,
        {
            "|x-support|note": {"type": "string", "value": "new"},
            f"{own}|wms|weight": {"type": "decimal", "value": "1.50"},
            f"{own}|wms|flags": {"type": "json", "value": "fragile"},
        },
    )
    assert response.status_code == 200, response.json()
    data = response.json()["customData"]
    assert data["|x-support|note"]["value"] == "new"
    assert data[f"{own}|wms|weight"] == {
        "connectionId": own,
        "moduleId": "wms",
        "key": "weight",
        "type": "decimal",
        "value": "1.50",
    }
    # json values are native JSON: a string stays a string.
    assert data[f"{own}|wms|flags"]["value"] == "fragile"
    # Entries not sent stay.
    assert data[f"{own}|wms|bin"]["value"] == "A-1"
    assert len(data) == 5
    order.refresh_from_db()
    assert order.last_modified_by == f"connection/{own}"
    assert AuditEntry.objects.filter(action="custom_data_set", record=order).count() == 3


def test_upsert_accepts_entries_as_get_returns_them(api, order):
    current = api.get(f"order/{order.local_id}/customdata").json()["customData"]
    entry = current["|x-support|note"]
    response = upsert(api, order, {"|x-support|note": {**entry, "value": "again"}})
    assert response.status_code == 200
    assert response.json()["customData"]["|x-support|note"]["value"] == "again"


def test_upsert_of_the_same_values_changes_nothing(api, order):
    before = api.get(f"order/{order.local_id}").json()["lastModified"]
    upsert(api, order, {"|x-support|note": {"type": "string", "value": "old"}})
    assert api.get(f"order/{order.local_id}").json()["lastModified"] == before
    assert not AuditEntry.objects.exists()


def test_writing_custom_data_scoped_to_another_connection_is_403(api, order, world):
    erp = world.erp.connection_id
    response = upsert(
        api,
        order,
        {
            "|x-support|note": {"type": "string", "value": "should not land"},
            f"{erp}|fortnox|series": {"type": "string", "value": "A"},
        },
    )
    assert response.status_code == 403
    body = response.json()
    assert body["errors"][0]["field"] == f"customData.{erp}|fortnox|series.connectionId"
    assert body["code"] == "forbidden"
    assert CustomData.objects.get(key="series").value == "B"
    assert CustomData.objects.get(key="note").value == "old"  # all or nothing


def test_another_tenants_connection_id_is_unknown_not_forbidden(api, order, other_api):
    theirs = other_api.connection.connection_id
    response = upsert(api, order, {f"{theirs}|m|k": {"type": "string", "value": "v"}})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == f"customData.{theirs}|m|k.connectionId"


def test_upsert_on_another_tenants_record_is_404(other_api, order):
    response = upsert(other_api, order, {"|x-a|b": {"type": "string", "value": "v"}})
    assert response.status_code == 404
    assert not CustomData.objects.filter(module_id="x-a").exists()


def test_put_replaces_own_and_unscoped_entries_and_keeps_other_connections(
    api, order, world, warehouse
):
    own, erp = warehouse.connection_id, world.erp.connection_id
    response = api.put(
        f"order/{order.local_id}",
        {
            "remoteId": None,
            "data": {},
            "customData": {f"{own}|wms|zone": {"type": "string", "value": "cold"}},
        },
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body["customData"]) == {f"{own}|wms|zone", f"{erp}|fortnox|series"}
    assert body["keptCustomData"] == [f"{erp}|fortnox|series"]
    assert AuditEntry.objects.filter(action="custom_data_delete").count() == 2


def test_put_with_an_entry_of_another_connection_is_403_and_changes_nothing(api, order, world):
    erp = world.erp.connection_id
    response = api.put(
        f"order/{order.local_id}",
        {
            "remoteId": None,
            "data": {"changed": True},
            "customData": {f"{erp}|fortnox|series": {"type": "string", "value": "X"}},
        },
    )
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.data == {}
    assert CustomData.objects.filter(record=order).count() == 3


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"type": "bool", "value": "maybe"}, "value"),
        ({"type": "integer", "value": True}, "value"),
        ({"type": "string", "value": 12}, "value"),
        ({"type": "date", "value": "2025-01-01"}, "type"),
        ({"value": "no type"}, "type"),
    ],
)
def test_values_that_do_not_parse_are_422_on_that_entry(api, order, entry, field):
    response = upsert(api, order, {"|x-a|k": entry})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == f"customData.|x-a|k.{field}"

"""POST .../customdata takes four shapes of body: {"customData": {...}}, one entry, a list of
entries, or the customData object itself. All are checked alike: same writes, same errors."""

import pytest
from django.test import Client

from records.models import AuditEntry, CustomData
from tests.factories import CustomDataFactory, RecordFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(world):
    record = RecordFactory(tenant=world.tenant, record_type="order")
    CustomDataFactory(record=record, module_id="x-support", key="note", value="old")
    return record


# Each entry as (connectionId, moduleId, key, type, value); connectionId None is unscoped.
def wrapped(entries):
    return {"customData": by_name(entries)}


def one(entries):
    (entry,) = entries
    return as_object(entry)


def listed(entries):
    return [as_object(entry) for entry in entries]


def by_name(entries):
    return {
        f"{cid or ''}|{module}|{key}": {"type": type_, "value": value}
        for cid, module, key, type_, value in entries
    }


def as_object(entry):
    cid, module, key, type_, value = entry
    body = {"moduleId": module, "key": key, "type": type_, "value": value}
    if cid is not None:
        body["connectionId"] = cid
    return body


SHAPES = [wrapped, one, listed, by_name]
SHAPE_IDS = ["customData", "entry", "list", "by-name"]


def upsert(api, record, body):
    return api.post(f"order/{record.local_id}/customdata", body)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_every_shape_upserts(api, order, warehouse, shape):
    own = warehouse.connection_id
    entries = [(None, "x-support", "note", "string", "new")]
    if shape is not one:
        entries.append((own, "wms", "weight", "decimal", "1.50"))

    response = upsert(api, order, shape(entries))

    assert response.status_code == 200, response.json()
    data = response.json()["customData"]
    assert data["|x-support|note"]["value"] == "new"
    if shape is not one:
        assert data[f"{own}|wms|weight"] == {
            "connectionId": own,
            "moduleId": "wms",
            "key": "weight",
            "type": "decimal",
            "value": "1.50",
        }
    assert AuditEntry.objects.filter(action="custom_data_set").count() == len(entries)
    order.refresh_from_db()
    assert order.last_modified_by == f"connection/{own}"


def test_entries_as_get_returns_them_can_be_sent_back_in_every_shape(api, order):
    current = api.get(f"order/{order.local_id}/customdata").json()["customData"]
    entry = {**current["|x-support|note"], "value": "again"}

    for body in (
        {"customData": {"|x-support|note": entry}},
        entry,
        [entry],
        {"|x-support|note": entry},
    ):
        response = upsert(api, order, body)
        assert response.status_code == 200, (body, response.json())
        assert response.json()["customData"]["|x-support|note"]["value"] == "again"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ((None, "x-a", "k", "bool", "maybe"), "customData.|x-a|k.value"),
        ((None, "x-a", "k", "integer", True), "customData.|x-a|k.value"),
        ((None, "x-a", "k", "date", "2025-01-01"), "customData.|x-a|k.type"),
        ((None, "x-a", " ", "string", "v"), "customData.|x-a| .key"),
        ((None, "x-a", "k" * 201, "string", "v"), f"customData.|x-a|{'k' * 201}.key"),
        (("0" * 32, "x-a", "k", "string", "v"), f"customData.{'0' * 32}|x-a|k.connectionId"),
    ],
    ids=["bool", "integer", "type", "empty key", "long key", "unknown connection"],
)
def test_a_bad_entry_is_the_same_422_in_every_shape(api, order, bad, field):
    responses = [upsert(api, order, shape([bad])) for shape in SHAPES]

    bodies = [response.json() for response in responses]
    assert [response.status_code for response in responses] == [422] * 4, bodies
    assert bodies[0]["errors"][0]["field"] == field
    assert all(body == bodies[0] for body in bodies), bodies
    assert CustomData.objects.get().value == "old"  # nothing written


def test_another_connections_entry_is_the_same_403_in_every_shape(api, order, world):
    erp = world.erp.connection_id
    entries = [
        (None, "x-support", "note", "string", "new"),
        (erp, "fortnox", "series", "string", "A"),
    ]

    responses = [upsert(api, order, shape(entries)) for shape in (wrapped, listed, by_name)]
    responses.append(upsert(api, order, one(entries[1:])))

    bodies = [response.json() for response in responses]
    assert [response.status_code for response in responses] == [403] * 4
    assert bodies[0]["errors"][0]["field"] == f"customData.{erp}|fortnox|series.connectionId"
    assert all(body == bodies[0] for body in bodies)
    assert CustomData.objects.get().value == "old"


def test_an_entry_without_a_module_is_named_with_an_empty_one(api, order):
    response = upsert(api, order, {"key": "k", "type": "string", "value": "v"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "customData.||k.moduleId"
    assert (
        response.json()
        == upsert(api, order, {"customData": {"||k": {"type": "string", "value": "v"}}}).json()
    )


def test_a_name_part_that_is_not_text_is_a_422_on_that_field(api, order):
    response = upsert(api, order, [{"moduleId": 5, "key": "k", "type": "string", "value": "v"}])

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "customData.||k.moduleId"


@pytest.mark.parametrize(
    "body",
    [
        "text",
        42,
        None,
        ["not an entry"],
        [
            {"moduleId": "x-a", "key": "k", "type": "string", "value": "a"},
            {"moduleId": "x-a", "key": "k", "type": "string", "value": "b"},
        ],
        {"customData": [{"moduleId": "x-a", "key": "k", "type": "string", "value": "a"}]},
    ],
    ids=["string", "number", "null", "list of text", "same entry twice", "list in customData"],
)
def test_a_body_of_no_shape_is_422(api, order, body):
    response = upsert(api, order, body)

    assert response.status_code == 422
    assert response.json()["code"] == "invalid"
    assert CustomData.objects.get().value == "old"


def test_an_empty_list_or_object_changes_nothing(api, order):
    before = api.get(f"order/{order.local_id}").json()
    for body in ([], {}, {"customData": {}}):
        response = upsert(api, order, body)
        assert response.status_code == 200
        assert set(response.json()["customData"]) == {"|x-support|note"}
    assert api.get(f"order/{order.local_id}").json()["version"] == before["version"]


def test_the_openapi_schema_documents_the_four_shapes_with_examples():
    schema = Client().get("/api/v1/openapi.json").json()
    body = schema["paths"]["/api/v1/{record_type}/{local_id}/customdata"]["post"]["requestBody"]
    content = body["content"]["application/json"]

    shapes = {ref["$ref"].rsplit("/", 1)[1] for ref in content["schema"]["anyOf"]}
    assert shapes == {
        "CustomDataUpsert",
        "CustomDataEntry",
        "CustomDataEntryList",
        "CustomDataByName",
    }
    assert set(content["examples"]) == {"wrapped", "entry", "entries", "byName"}
    components = schema["components"]["schemas"]
    assert set(components["CustomDataEntry"]["required"]) == {"moduleId", "key", "type", "value"}
    assert components["CustomDataEntryList"]["type"] == "array"
    for name in shapes:
        assert components[name]["description"]

"""recordSource: who created a record, as an object by type (connection, user, system); the
API may set only its `code`, and only the connection that created the record may change it."""

import pytest
from django.test import Client

from integrations import apikeys
from records.audit import Actor
from records.models import AuditEntry, Record
from records.services import create_record
from references.services import ReferenceInput, add_reference
from tests.factories import ConnectionFactory, RecordFactory

from .conftest import ApiClient, api_connector, feed_queries

pytestmark = pytest.mark.django_db


@pytest.fixture
def store_api(world):
    """A second API connection on the same tenant."""
    connection = ConnectionFactory(tenant=world.tenant, name="Store API", connector=api_connector())
    return ApiClient(connection, apikeys.rotate_key(connection))


def created_by_warehouse(api, **body):
    response = api.post("order", {"data": {"n": 1}, **body})
    assert response.status_code == 201, response.json()
    return response.json()


# --- reading it: a connection, a user, the system ---------------------------------------


def test_a_record_created_through_the_api_names_the_connection(api, warehouse):
    body = created_by_warehouse(api, remoteId="WH-1", recordSource={"code": "store-2"})

    expected = {
        "type": "connection",
        "connectionType": "api",
        "connectionId": warehouse.connection_id,
        "connectionName": "Warehouse API",
        "code": "store-2",
    }
    assert body["recordSource"] == expected
    assert api.get(f"order/{body['localId']}").json()["recordSource"] == expected
    by_remote_id = api.get("order/by-remote-id", {"remoteId": "WH-1"})
    assert by_remote_id.json()["recordSource"] == expected
    page = api.get("order").json()["items"]
    assert [item["recordSource"] for item in page] == [expected]


def test_a_record_a_sync_created_names_its_connection_and_connector(api, world):
    # Shopify's sync links an order the platform did not know yet: the engine creates it.
    record = add_reference(
        world.integration,
        "order",
        ReferenceInput(source_id="5001", target_id="INV-1"),
        Actor.for_connection(world.shop),
    )

    response = api.get(f"order/{record.local_id}")

    assert response.json()["recordSource"] == {
        "type": "connection",
        "connectionType": "shopify",
        "connectionId": world.shop.connection_id,
        "connectionName": "Shopify",
        "code": None,
    }


def test_a_record_a_user_created_names_the_login(api, world, support_client):
    # Sven adds a reference on the References page; the record is new.
    url = f"/t/acme/integrations/{world.integration.pk}/references/orders/add/"
    assert support_client.post(url, {"source_id": "5001", "target_id": "INV-1"}).status_code == 302
    record = Record.objects.get(remote_ids__remote_id="5001")

    response = api.get(f"order/{record.local_id}")

    assert response.json()["recordSource"] == {"type": "user", "login": "sven"}


def test_a_record_the_system_created_names_what_did_it(api, world):
    record = create_record(world.tenant, "order", Actor.system("sync"))

    response = api.get(f"order/{record.local_id}")

    assert response.json()["recordSource"] == {"type": "system", "name": "sync"}


def test_a_deleted_connection_is_still_named_by_its_id(api, world):
    gone = ConnectionFactory(tenant=world.tenant, name="Old shop", connector__code="woocommerce")
    record = create_record(world.tenant, "order", Actor.for_connection(gone))
    assert record.source_connection == gone
    gone.delete()

    response = api.get(f"order/{record.local_id}")

    assert response.json()["recordSource"] == {
        "type": "connection",
        "connectionType": None,
        "connectionId": gone.connection_id,
        "connectionName": None,
        "code": None,
    }


def test_reading_a_connection_created_record_takes_no_extra_query(api, django_assert_num_queries):
    local_id = created_by_warehouse(api, remoteId="WH-1", recordSource={"code": "s"})["localId"]
    # auth, record (with its source connection and connector joined), remote ids, custom data
    with django_assert_num_queries(2):
        assert api.get("order/by-remote-id", {"remoteId": "WH-1"}).status_code == 200
    with django_assert_num_queries(2):
        assert api.get(f"order/{local_id}").status_code == 200
    with django_assert_num_queries(feed_queries(2)):
        assert api.get("order").status_code == 200


# --- setting the code ------------------------------------------------------------------------


def test_create_sets_the_code_trimmed_and_audits_it(api):
    body = created_by_warehouse(api, recordSource={"code": "  store-2 "})

    record = Record.objects.get(local_id=body["localId"])
    assert record.source_code == "store-2"
    assert body["recordSource"]["code"] == "store-2"
    created = AuditEntry.objects.get(record=record, action="record_create")
    assert created.after == {"data": {"n": 1}, "source_code": "store-2"}


def test_create_ignores_every_other_field_of_record_source(api, warehouse, world):
    body = created_by_warehouse(
        api,
        recordSource={
            "type": "user",
            "login": "admin",
            "connectionId": world.shop.connection_id,
            "connectionName": "Shopify",
            "connectionType": "shopify",
            "code": "b2b",
        },
    )

    assert body["recordSource"] == {
        "type": "connection",
        "connectionType": "api",
        "connectionId": warehouse.connection_id,
        "connectionName": "Warehouse API",
        "code": "b2b",
    }


@pytest.mark.parametrize(
    ("record_source", "field"),
    [
        ({"code": "x" * 101}, "recordSource.code"),
        ({"code": "store\n2"}, "recordSource.code"),
        ({"code": 2}, "recordSource.code"),
        ("connection/abc", "recordSource"),
        (["store-2"], "recordSource"),
    ],
)
def test_a_bad_record_source_is_422_and_creates_nothing(api, record_source, field):
    response = api.post("order", {"recordSource": record_source})

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"][0]["field"] == field
    assert not Record.objects.exists()


def put(api, body, **changes):
    """PUT the record as GET returned it, with `changes`."""
    sent = {key: body[key] for key in ("remoteId", "remoteRef", "data", "customData")}
    return api.put(f"order/{body['localId']}", {**sent, **changes})


def test_put_changes_the_code_once_bumping_the_version(api):
    body = created_by_warehouse(api, recordSource={"code": "store-1"})

    response = put(api, body, recordSource={"code": "store-2"})

    assert response.status_code == 200, response.json()
    after = response.json()
    assert after["recordSource"]["code"] == "store-2"
    assert after["version"] == body["version"] + 1
    record = Record.objects.get(local_id=body["localId"])
    update = AuditEntry.objects.get(record=record, action="record_update")
    assert (update.before, update.after) == ({"source_code": "store-1"}, {"source_code": "store-2"})


def test_put_without_a_code_or_with_the_get_body_keeps_it_and_changes_nothing(api):
    body = created_by_warehouse(api, recordSource={"code": "store-1"})

    for changes in ({}, {"recordSource": None}, {"recordSource": {}}, body):
        response = put(api, body, **{"recordSource": body["recordSource"], **changes})
        assert response.status_code == 200, response.json()
        assert response.json()["recordSource"]["code"] == "store-1"
        assert response.json()["version"] == body["version"]
    assert not AuditEntry.objects.filter(action="record_update").exists()


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_put_with_a_null_or_empty_code_removes_it(api, empty):
    body = created_by_warehouse(api, recordSource={"code": "store-1"})

    response = put(api, body, recordSource={"code": empty})

    assert response.status_code == 200
    assert response.json()["recordSource"]["code"] is None
    assert Record.objects.get(local_id=body["localId"]).source_code == ""


def test_another_connection_may_not_change_the_code_but_may_send_it_back(api, store_api):
    body = created_by_warehouse(api, recordSource={"code": "store-1"})
    theirs = store_api.get(f"order/{body['localId']}").json()

    refused = put(store_api, theirs, data={"changed": True}, recordSource={"code": "mine"})
    assert refused.status_code == 403
    error = refused.json()
    assert error["code"] == "forbidden"
    assert error["errors"][0]["field"] == "recordSource.code"
    assert "Warehouse API (connection, code: store-1)" in error["detail"]
    record = Record.objects.get(local_id=body["localId"])
    assert (record.source_code, record.data, record.version) == ("store-1", {"n": 1}, 1)

    sent_back = put(store_api, theirs, recordSource=theirs["recordSource"])
    assert sent_back.status_code == 200
    assert sent_back.json()["recordSource"]["code"] == "store-1"


def test_a_user_or_system_record_gets_no_code(api, world):
    record = RecordFactory(tenant=world.tenant, record_source="user/anna")
    body = api.get(f"order/{record.local_id}").json()

    response = put(api, body, recordSource={"code": "store-1"})

    assert response.status_code == 403
    assert "created by user anna" in response.json()["detail"]
    record.refresh_from_db()
    assert record.source_code == ""


# --- the schema -----------------------------------------------------------------------------


def test_the_openapi_schema_describes_record_source_by_type():
    schema = Client().get("/api/v1/openapi.json").json()
    schemas = schema["components"]["schemas"]

    out = schemas["RecordOut"]["properties"]["recordSource"]
    assert out["discriminator"]["propertyName"] == "type"
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in out["oneOf"]} == {
        "ConnectionSource",
        "UserSource",
        "SystemSource",
    }
    assert "description" in out
    assert set(schemas["ConnectionSource"]["required"]) >= {"type", "connectionId", "code"}
    assert schemas["ConnectionSource"]["examples"][0]["code"] == "store-2"
    assert schemas["UserSource"]["properties"]["login"]["type"] == "string"
    assert schemas["SystemSource"]["properties"]["name"]["type"] == "string"
    assert set(schemas["RecordSourceIn"]["properties"]) == {"code"}
    for body in ("RecordCreate", "RecordReplace"):
        assert "recordSource" in schemas[body]["properties"]

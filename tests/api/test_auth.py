"""HTTP Basic: connection_id + API key of an active API connection; else 401."""

import hashlib

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from integrations import apikeys
from tests.factories import ConnectionFactory, RecordFactory

from .conftest import ApiClient, api_connector, basic

pytestmark = pytest.mark.django_db


def assert_unauthorized(response):
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Basic realm="refdesk"')
    assert response.json()["code"] == "unauthorized"


@pytest.fixture
def record(world):
    return RecordFactory(tenant=world.tenant)


def test_the_right_key_reads_records(api, record):
    assert api.get(f"order/{record.local_id}").status_code == 200


def test_no_credentials_is_401_with_www_authenticate(world, record):
    assert_unauthorized(Client().get(f"/api/v1/order/{record.local_id}"))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "Basic not-base64!",
        basic("0" * 32, "whatever"),
        basic("", ""),
        basic("bad\x00id", "x"),
    ],
)
def test_malformed_or_unknown_credentials_are_401(world, record, header):
    response = Client(HTTP_AUTHORIZATION=header).get(f"/api/v1/order/{record.local_id}")
    assert_unauthorized(response)


def test_a_wrong_key_is_401(warehouse, record):
    assert_unauthorized(ApiClient(warehouse, warehouse.key + "x").get(f"order/{record.local_id}"))


def test_an_inactive_connection_is_401(api, warehouse, record):
    warehouse.active = False
    warehouse.save()
    assert_unauthorized(api.get(f"order/{record.local_id}"))


def test_a_connection_of_another_connector_cannot_use_the_api(world, record):
    # Even with a digest planted, Shopify is not an API connector.
    world.shop.api_key_digest = apikeys.digest("planted")
    world.shop.save()
    assert_unauthorized(ApiClient(world.shop, "planted").get(f"order/{record.local_id}"))


def test_rotating_the_key_stops_the_old_one(api, warehouse, record):
    new_key = apikeys.rotate_key(warehouse)
    assert_unauthorized(api.get(f"order/{record.local_id}"))
    assert ApiClient(warehouse, new_key).get(f"order/{record.local_id}").status_code == 200


def test_keys_are_random_and_only_their_sha256_is_stored(warehouse):
    assert len(warehouse.key) >= 43
    warehouse.refresh_from_db()
    assert warehouse.api_key_digest == hashlib.sha256(warehouse.key.encode()).hexdigest()
    assert warehouse.key not in warehouse.api_key_digest
    assert warehouse.api_key_rotated_at is not None


def test_a_connection_without_a_key_cannot_log_in_with_an_empty_password(world, record):
    connection = ConnectionFactory(tenant=world.tenant, connector=api_connector(), name="Keyless")
    assert_unauthorized(ApiClient(connection, "").get(f"order/{record.local_id}"))


def test_the_api_key_command_rotates_and_prints_only_the_key(warehouse, record, capsys):
    call_command("api_key", warehouse.connection_id)
    key = capsys.readouterr().out.strip()
    assert ApiClient(warehouse, key).get(f"order/{record.local_id}").status_code == 200
    assert_unauthorized(ApiClient(warehouse, warehouse.key).get(f"order/{record.local_id}"))


def test_the_api_key_command_refuses_other_connectors_and_unknown_ids(world):
    with pytest.raises(CommandError, match="not a connection of an API connector"):
        call_command("api_key", world.shop.connection_id)
    with pytest.raises(CommandError, match="No connection"):
        call_command("api_key", "0" * 32)

"""Tenant admins see their connections and rotate an API connection's key in the app."""

import pytest

from integrations import apikeys
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_connection(world):
    connection = ConnectionFactory(
        tenant=world.tenant, name="Warehouse API", connector__code="api", connector__category="api"
    )
    return connection, apikeys.rotate_key(connection)


def rotate_url(connection, slug="acme"):
    return f"/t/{slug}/connections/{connection.connection_id}/rotate-key/"


def test_connections_page_lists_ids_and_key_status(admin_client, world, api_connection):
    connection, _ = api_connection
    response = admin_client.get("/t/acme/connections/")
    assert response.status_code == 200
    for shown in (world.shop, world.erp, connection):
        assert shown.connection_id in response.text
    assert "Rotate key…" in response.text
    assert rotate_url(connection) in response.text
    assert rotate_url(world.shop) not in response.text  # not an API connection


def test_rotating_asks_first_then_shows_the_new_key_once(admin_client, api_connection):
    connection, old_key = api_connection

    confirm = admin_client.get(rotate_url(connection))
    assert "The current key stops working at once." in confirm.text
    assert apikeys.authenticate(connection.connection_id, old_key) == connection

    response = admin_client.post(rotate_url(connection), {"confirm": "rotate"})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    new_key = response.context["key"]
    assert new_key in response.text
    assert apikeys.authenticate(connection.connection_id, new_key) == connection
    assert apikeys.authenticate(connection.connection_id, old_key) is None
    connection.refresh_from_db()
    assert new_key not in connection.api_key_digest  # only the digest is stored


def test_a_post_without_the_confirmation_changes_nothing(admin_client, api_connection):
    connection, old_key = api_connection
    response = admin_client.post(rotate_url(connection))
    assert response.status_code == 400
    assert apikeys.authenticate(connection.connection_id, old_key) == connection


def test_support_sees_no_rotate_button_and_is_refused(support_client, api_connection):
    connection, old_key = api_connection
    page = support_client.get("/t/acme/connections/")
    assert page.status_code == 200
    assert connection.connection_id in page.text
    assert rotate_url(connection) not in page.text
    assert support_client.post(rotate_url(connection), {"confirm": "rotate"}).status_code == 403
    assert apikeys.authenticate(connection.connection_id, old_key) == connection


def test_other_tenants_and_non_api_connections_are_404(admin_client, world):
    foreign = ConnectionFactory(
        tenant=world.other_tenant, connector__code="api", connector__category="api"
    )
    assert admin_client.post(rotate_url(foreign), {"confirm": "rotate"}).status_code == 404
    assert admin_client.get(rotate_url(foreign, slug="other")).status_code == 404
    assert admin_client.get(rotate_url(world.shop)).status_code == 404
    foreign.refresh_from_db()
    assert foreign.api_key_digest == ""

import base64
import json

import pytest
from django.db import connection
from django.test import Client

from common.citus.tables import uses_citus_backend
from integrations import apikeys
from integrations.models import Connector
from tests.factories import ConnectionFactory, ConnectorFactory


def feed_queries(page_queries: int) -> int:
    """A feed page's queries: on Citus one more, the horizon read on the coordinator first
    (records.services.feed_horizon). Two-phase commits that earlier tests' setup left for
    Citus's periodic recovery are forgotten first, as the feed would (two queries more)."""
    if not uses_citus_backend(connection):
        return page_queries
    with connection.cursor() as cursor:
        cursor.execute("SELECT recover_prepared_transactions()")
    return page_queries + 1


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class ApiClient:
    """Django's test client speaking JSON as one API connection."""

    def __init__(self, connection, key):
        self.connection = connection
        self.key = key
        self.client = Client(HTTP_AUTHORIZATION=basic(connection.connection_id, key))

    def get(self, path, params=None):
        return self.client.get(f"/api/v1/{path}", params or {})

    def post(self, path, body):
        return self.client.post(
            f"/api/v1/{path}", json.dumps(body), content_type="application/json"
        )

    def put(self, path, body, **headers):
        return self.client.put(
            f"/api/v1/{path}", json.dumps(body), content_type="application/json", headers=headers
        )


def api_connector():
    return ConnectorFactory(code="api", name="API connector", category=Connector.Category.API)


@pytest.fixture
def warehouse(world):
    """The API connection "Warehouse API" on the world's tenant, with a fresh key."""
    connection = ConnectionFactory(
        tenant=world.tenant, name="Warehouse API", connector=api_connector()
    )
    connection.key = apikeys.rotate_key(connection)
    return connection


@pytest.fixture
def api(warehouse):
    return ApiClient(warehouse, warehouse.key)


@pytest.fixture
def other_api(world):
    """An API connection of the other tenant."""
    connection = ConnectionFactory(
        tenant=world.other_tenant, name="Their API", connector=api_connector()
    )
    return ApiClient(connection, apikeys.rotate_key(connection))

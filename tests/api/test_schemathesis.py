"""Schemathesis drives the served OpenAPI schema through the WSGI app: whatever it sends,
no 500s, and every response matches the schema (status, content type, body, headers)."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import CustomDataFactory, RecordFactory, RemoteIdFactory

from .conftest import basic

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_database_connection():
    """A plain WSGI call fires request_started/finished, whose close_old_connections would
    close the test's connection mid-transaction (PostgreSQL); Django's test client disconnects
    them the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def auth_header(db, world, warehouse):
    """Some records to find, so reads return bodies to validate, not only 404s."""
    for index in range(3):
        record = RecordFactory(tenant=world.tenant, record_type="order", data={"n": index})
        RemoteIdFactory(record=record, connection=warehouse, remote_id=f"WH-{index}")
        CustomDataFactory(record=record, module_id="x-support", key="note", value="hi")
    return {"Authorization": basic(warehouse.connection_id, warehouse.key)}


# Reading the schema needs no database: it is served by the app itself, through WSGI.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_never_fails_and_always_matches_its_schema(case, auth_header):
    response = case.call(headers=auth_header)
    case.validate_response(response, checks=CHECKS, headers=auth_header)

"""Every API route, as tenant A's API connection with tenant B's ids: 404, nothing written.

The routes come from the URL resolver, so an endpoint added to the API is covered at once.
A 404 for B's record must be indistinguishable from a 404 for a record that does not exist.
"""

import base64
import json

import pytest
from django.test import Client

from integrations import apikeys
from integrations.models import AuthFailure
from records.models import Record

from .conftest import SECRET, changed_tables, database_fingerprint, kwarg_values
from .urlwalk import api_routes

pytestmark = pytest.mark.django_db

METHODS = ["get", "post", "put", "patch", "delete"]
VOCABULARY_KWARGS = {"record_type"}
API_ROUTES = api_routes()
# Would create or change something if the route let it through.
API_PAYLOAD = {
    "remoteId": "PAYLOAD-API",
    "remoteRef": None,
    "data": {"payload": True},
    "customData": {"|x-payload|k": {"type": "string", "value": "payload"}},
}
MISSING_LOCAL_ID = "0" * 32


def basic(connection_id: str, key: str) -> dict:
    token = base64.b64encode(f"{connection_id}:{key}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def api_a(tenants):
    """A client authenticated as tenant A's API connection."""
    key = apikeys.rotate_key(tenants.a.api_connection)
    return Client(**basic(tenants.a.api_connection.connection_id, key))


def call(client, method, url):
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, json.dumps(API_PAYLOAD), content_type="application/json")


def test_the_walker_finds_the_api():
    names = {route.name for route in API_ROUTES}
    assert "api-v1:get_record" in names, names


def test_the_payload_really_writes_on_our_own_record(api_a, tenants):
    """Positive control: what the isolation tests send would change a record it reached."""
    record = tenants.a.linked
    url = f"/api/v1/order/{record.local_id}"
    response = api_a.put(url, json.dumps(API_PAYLOAD), content_type="application/json")
    assert response.status_code == 200, response.content
    assert Record.objects.get(pk=record.pk).data == {"payload": True}


@pytest.mark.parametrize(
    "route", [r for r in API_ROUTES if set(r.kwarg_names) - VOCABULARY_KWARGS], ids=str
)
def test_another_tenants_record_is_a_404_like_a_missing_one(api_a, tenants, route):
    theirs = route.fill(kwarg_values(tenants.b))
    missing = route.fill({**kwarg_values(tenants.b), "local_id": MISSING_LOCAL_ID})
    before = database_fingerprint()
    for method in METHODS:
        response = call(api_a, method, theirs)
        assert response.status_code in (404, 405), (
            f"{method.upper()} {theirs}: {response.status_code} {response.content[:300]}"
        )
        assert SECRET.encode() not in response.content
        control = call(api_a, method, missing)
        assert (control.status_code, control.content) == (
            response.status_code,
            response.content.replace(tenants.b.linked.local_id.encode(), MISSING_LOCAL_ID.encode()),
        ), f"{method.upper()} {theirs} differs from a missing record: an existence oracle"
    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize("route", API_ROUTES, ids=str)
def test_no_api_response_shows_the_other_tenant(api_a, tenants, route):
    url = route.fill(kwarg_values(tenants.a))
    for method in METHODS:
        response = call(api_a, method, url)
        assert response.status_code < 500, f"{method.upper()} {url}: {response.status_code}"
        assert SECRET.encode() not in response.content, f"{method.upper()} {url}"


def test_looking_up_another_tenants_remote_id_is_a_404(api_a, tenants):
    for remote_id in (f"{SECRET}-S1", f"{SECRET}-API1", f"{SECRET}-T1"):
        response = api_a.get(f"/api/v1/order/by-remote-id?remoteId={remote_id}")
        assert response.status_code == 404
        assert SECRET.encode() not in response.content


def test_a_connection_cannot_authenticate_with_another_connections_key(tenants):
    key_b = apikeys.rotate_key(tenants.b.api_connection)
    client = Client(**basic(tenants.a.api_connection.connection_id, key_b))
    response = client.get(f"/api/v1/order/{tenants.a.linked.local_id}")
    assert response.status_code == 401


PUBLIC_API_ROUTES = {"api-v1:openapi-json", "api-v1:openapi-view", "api-v1:api-root"}


@pytest.mark.parametrize(
    "route", [r for r in API_ROUTES if r.name not in PUBLIC_API_ROUTES], ids=str
)
def test_every_api_route_needs_credentials(client, tenants, route):
    url = route.fill(kwarg_values(tenants.a))
    before = database_fingerprint()
    for method in METHODS:
        response = call(client, method, url)
        assert response.status_code in (401, 405), f"{method.upper()} {url}: {response.status_code}"
        if response.status_code == 401:
            assert response["WWW-Authenticate"].startswith("Basic")
    assert changed_tables(before, database_fingerprint()) == {}


def test_repeated_wrong_keys_are_throttled_but_the_right_key_still_works(tenants):
    """Someone who knows a connectionId cannot stop that connection's sync by guessing."""
    connection = tenants.a.api_connection
    key = apikeys.rotate_key(connection)
    wrong = Client(**basic(connection.connection_id, "wrong-key"))
    url = f"/api/v1/order/{tenants.a.linked.local_id}"
    for _ in range(10):
        assert wrong.get(url).status_code == 401

    throttled = wrong.get(url)
    right = Client(**basic(connection.connection_id, key)).get(url)

    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert "Too many failed attempts" in throttled.json()["detail"]
    assert int(throttled["Retry-After"]) > 60
    assert right.status_code == 200
    assert AuthFailure.objects.filter(scope="api").count() == 10  # locked-out tries not counted


def test_successful_api_calls_write_nothing_for_throttling(api_a, tenants):
    for _ in range(3):
        assert api_a.get(f"/api/v1/order/{tenants.a.linked.local_id}").status_code == 200
    assert not AuthFailure.objects.exists()

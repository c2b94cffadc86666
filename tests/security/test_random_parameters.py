"""No 5xx from any parameter, property-based: every route of the URLconf (walked, so a route added
tomorrow is covered tomorrow), GET and POST, as a tenant admin and as support staff, with random
and huge values in its numeric URL kwargs, its query string and its form fields; the API's
routes the same way as an API connection. Each example is rolled back, so every one starts from
the same world. Example counts stay modest: CI runs the suite twice on 2 cores.
"""

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations import apikeys

from .conftest import kwarg_values
from .test_api_isolation import basic
from .test_bad_input import rolled_back
from .urlwalk import project_routes

pytestmark = pytest.mark.django_db

# Every parameter name a view, a FilterSet or the API reads, and one no view knows.
PARAMETER_NAMES = [
    "page", "per_page", "after", "before", "q", "sort", "linked", "known_to", "unknown_to",
    "modified_after", "last_modified_by", "finding", "upload", "class", "side", "field",
    "refresh", "to", "add", "all", "row", "pair", "version", "confirm", "action", "next", "tab",
    "source_id", "target_id", "source_ref", "target_ref", "remote_id", "module_id", "key",
    "type", "value", "limit", "cursor", "modifiedAtOrAfter", "remoteId", "unheard_of",
]  # fmt: skip
# URL kwargs the URL patterns admit digits for: any digits, however many.
NUMERIC_KWARGS = {"integration_id", "batch_id", "job_id", "custom_data_id", "entry_id"}

huge_digits = st.one_of(
    st.integers(min_value=0, max_value=10**40).map(str),
    st.sampled_from(["9" * 30, "9" * 5000, "0" * 100 + "1", str(2**63), str(2**63 - 1)]),
)
values = st.one_of(
    huge_digits,
    st.sampled_from(["²", "٣", "1_0", "-1", "0", "1e9", " 7 ", "", "1:2", "a:b", "\x00", "🔗"]),
    st.text(max_size=30),
)
query = st.dictionaries(st.sampled_from(PARAMETER_NAMES), values, max_size=6)
FEW = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ROUTES = [route for route in project_routes() if not route.is_admin]
PAGE_ROUTES = [route for route in ROUTES if not route.is_api]
API_ROUTES = [route for route in ROUTES if route.is_api]


def url_kwargs(route, tenants, data) -> dict:
    known = {**kwarg_values(tenants.a), "record_type": "order"}
    numbers = {name: data.draw(huge_digits) for name in route.kwarg_names if name in NUMERIC_KWARGS}
    return {**known, **numbers}


def assert_no_server_error(response, method, url, params):
    assert response.status_code < 500, (method, url[:200], params, response.status_code)


@pytest.mark.parametrize("route", PAGE_ROUTES, ids=str)
def test_no_page_answers_a_5xx_to_any_parameter(tenants, route):
    clients = {}
    for who in ("admin", "support"):
        clients[who] = Client()
        clients[who].force_login(getattr(tenants, who))

    @FEW
    @given(data=st.data(), params=query, fields=query)
    def attempt(data, params, fields):
        url = route.fill(url_kwargs(route, tenants, data), check=False)

        def requests():
            for client in clients.values():
                response = client.get(url, params)
                assert_no_server_error(response, "GET", url, params)
                response = client.post(url, fields, HTTP_HX_REQUEST="true")
                assert_no_server_error(response, "POST", url, fields)

        rolled_back(requests)

    attempt()


@pytest.mark.parametrize("route", API_ROUTES, ids=str)
def test_no_api_route_answers_a_5xx_to_any_parameter(tenants, client, route):
    key = apikeys.rotate_key(tenants.a.api_connection)
    client.defaults.update(basic(tenants.a.api_connection.connection_id, key))

    @FEW
    @given(data=st.data(), params=query, body=query)
    def attempt(data, params, body):
        url = route.fill(url_kwargs(route, tenants, data), check=False)

        def requests():
            response = client.get(url, params)
            assert_no_server_error(response, "GET", url, params)
            for method in ("post", "put"):
                response = getattr(client, method)(
                    url, json.dumps(body), content_type="application/json"
                )
                assert_no_server_error(response, method.upper(), url, body)
                if response.status_code >= 400:
                    assert response.json()["code"], response.content

        rolled_back(requests)

    attempt()

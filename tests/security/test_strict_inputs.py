"""Strict inputs: the API takes JSON bodies only and answers every error as JSON; a number in a
URL or form that is no number (or a huge one) is named on the page or is a 404, never a 500."""

import json

import pytest
from django.contrib.messages import get_messages

from common.numbers import MAX_DATABASE_ID, parse_number
from integrations import apikeys
from records.models import Record

from ..references.test_health import url
from .conftest import changed_tables, database_fingerprint
from .test_api_isolation import basic

pytestmark = pytest.mark.django_db

HUGE = ["9" * 26, "9" * 30, "9" * 5000, "0" * 5000 + "1", "²", "٣", "1_0", " 7", "-1", "0"]


@pytest.fixture
def api_client(tenants, client):
    key = apikeys.rotate_key(tenants.a.api_connection)
    client.defaults.update(basic(tenants.a.api_connection.connection_id, key))
    return client


# --- the API: JSON only --------------------------------------------------------------------

BODY = json.dumps({"remoteId": "CT-1", "data": {}})


def api_writes(tenants):
    local_id = tenants.a.linked.local_id
    return [
        ("post", "/api/v1/order"),
        ("put", f"/api/v1/order/{local_id}"),
        ("post", f"/api/v1/order/{local_id}/customdata"),
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "",
    ],
)
def test_api_writes_refuse_a_body_that_is_not_sent_as_json(api_client, tenants, content_type):
    """What a cross-site form can send without a preflight: never written."""
    before = database_fingerprint()
    for method, path in api_writes(tenants):
        response = getattr(api_client, method)(path, BODY, content_type=content_type)

        assert response.status_code == 415, (method, path, response.status_code)
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["code"] == "unsupported_media_type"
        assert response.json()["detail"]
    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_api_writes_take_json(api_client, content_type):
    response = api_client.post("/api/v1/order", BODY, content_type=content_type)

    assert response.status_code == 201, response.content


def test_a_body_over_the_size_limit_is_the_apis_json_error(api_client, tenants, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"remoteId": "BIG-1", "data": {"note": "x" * 2000}})
    before = database_fingerprint()
    for method, path in api_writes(tenants):
        response = getattr(api_client, method)(path, body, content_type="application/json")

        assert response.status_code == 413, (method, path, response.status_code)
        assert response.json()["code"] == "too_large"
        assert "1,000 bytes" in response.json()["detail"]
    assert changed_tables(before, database_fingerprint()) == {}


# --- numbers from URLs and forms ---------------------------------------------------------


@pytest.mark.parametrize("value", HUGE)
def test_one_parser_takes_plain_ascii_digits_within_bounds_only(value):
    assert parse_number(value) is None
    assert parse_number("7") == 7 and parse_number(str(MAX_DATABASE_ID)) == MAX_DATABASE_ID


@pytest.mark.parametrize("name", ["page", "per_page"])
def test_lists_take_any_page_and_page_size(support_client, tenants, name):
    lists = [
        "/t/acme/jobs/",
        "/t/acme/records/order/",
        "/t/acme/records/",
        url(tenants, "list"),
        url(tenants, "health"),
    ]
    for path in lists:
        for value in HUGE:
            response = support_client.get(path, {name: value})

            assert response.status_code in (200, 302), (path, name, value, response.status_code)


@pytest.mark.parametrize("value", ["9" * 30, "9" * 5000, "²", str(MAX_DATABASE_ID + 1)])
def test_a_health_fix_of_a_row_that_is_no_number_is_named_and_changes_nothing(
    admin_client, tenants, value
):
    before = database_fingerprint()

    response = admin_client.post(
        url(tenants, "health-fix"), {"finding": "lost", "action": "relink", "row": ["1", value]}
    )

    assert response.status_code == 302
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith(f"Row '{value[:20]}") and "nothing was changed" in message
    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize("value", ["9" * 30, "²", "1:" + "9" * 5000])
def test_accepting_suggestions_of_no_rows_changes_nothing(admin_client, tenants, value):
    before = database_fingerprint()

    response = admin_client.post(url(tenants, "suggestions-accept"), {"pair": [value]})

    assert response.status_code < 500
    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize("value", ["9" * 30, "9" * 5000, "²"])
def test_a_delete_with_a_version_that_is_no_number_still_answers(admin_client, tenants, value):
    record = tenants.a.linked
    path = url(tenants, "delete", local_id=record.local_id)

    response = admin_client.post(path, {"version": value}, HTTP_HX_REQUEST="true")

    assert response.status_code < 500
    assert Record.objects.filter(pk=record.pk).exists()


# --- every API error is JSON -------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("get", "/api/v1/", 404),
        ("get", "/api/v1/order/x/y/z", 404),
        ("delete", "/api/v1/order", 405),
        ("patch", "/api/v1/order", 405),
        ("get", "/api/v1/order?limit=" + "9" * 40, 422),
        ("get", "/api/v1/order?modifiedAtOrAfter=" + "9" * 5000, 422),
    ],
)
def test_every_api_error_has_the_json_shape(api_client, method, path, status):
    response = getattr(api_client, method)(path)

    assert response.status_code == status, response.content[:200]
    body = response.json()
    assert body["detail"] and body["code"] and body["errors"] is not None
    if status == 405:
        assert "GET" in response["Allow"]

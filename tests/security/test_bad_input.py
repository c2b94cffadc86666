"""Bad input, property-based (hypothesis): a field error, nothing written, never a 500.

Ids with control characters, unicode, 10k characters, whitespace; `|` in custom data keys;
wrong custom data types; malformed JSON. The services, every HTML write route (from the URL
resolver) and the API. Example counts stay modest: CI runs the suite twice on 2 cores.
"""

import json

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import DomainError, InvalidValue
from integrations import apikeys
from records.custom_data import CustomDataInput, set_custom_data
from records.models import AuditEntry, CustomData, Record, RemoteId
from references.services import ReferenceInput, add_reference

from .conftest import WRITE_PAYLOAD, changed_tables, database_fingerprint, kwarg_values
from .test_api_isolation import basic
from .test_roles_csrf import ADMIN, ROUTE_ROLES, WRITE
from .urlwalk import tenant_routes

pytestmark = pytest.mark.django_db

FEW = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Cc", "Zs", "Zl", "Zp"]), max_size=8),
    st.sampled_from(
        [
            "",
            "   ",
            "\t",
            "a\nb",
            "a\x00b",
            "\x7f",
            "a\u0085b",
            "|",
            "x-a|b",
            "ＡＢＣ",
            "🔗",
            "e\u0301",
            "x" * 255,
            "x" * 256,
            "x" * 10_000,
            " 42 ",
            "null",
            "<script>alert(1)</script>",
            "' OR 1=1 --",
        ]
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | nasty_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(nasty_text, children, max_size=3)
    ),
    max_leaves=8,
)


def rolled_back(fn):
    """Run fn in a savepoint that is always undone, so every example starts from the same state."""
    with transaction.atomic():
        try:
            return fn()
        finally:
            transaction.set_rollback(True)


# --- services ---------------------------------------------------------------------------


@FEW
@given(source=nasty_text, target=nasty_text, source_ref=nasty_text)
def test_add_reference_refuses_bad_ids_with_a_field_error(world, source, target, source_ref):
    before = RemoteId.objects.count(), AuditEntry.objects.count()

    def attempt():
        try:
            add_reference(
                world.integration,
                "order",
                ReferenceInput(source, target, source_ref=source_ref),
                world.actor,
            )
        except InvalidValue as error:
            assert error.field in {"source_id", "target_id", "source_ref"}
            assert error.message
            assert (RemoteId.objects.count(), AuditEntry.objects.count()) == before
            return "refused"
        stored = RemoteId.objects.filter(connection=world.erp).get()
        assert stored.remote_id == target.strip()
        assert 0 < len(stored.remote_id) <= 255
        return "saved"

    rolled_back(attempt)


@FEW
@given(
    module=nasty_text,
    key=nasty_text,
    type_=nasty_text | st.sampled_from(["string", "bool", "integer", "decimal", "json"]),
    value=json_values,
)
def test_custom_data_refuses_bad_keys_and_values(world, module, key, type_, value):
    record = Record.objects.create(
        tenant=world.tenant, record_type="order", last_modified_by="system/tests"
    )

    def attempt():
        try:
            set_custom_data(record, [CustomDataInput(module, key, type_, value)], world.actor)
        except InvalidValue as error:
            assert error.field in {"module_id", "key", "type", "value"}
            assert not CustomData.objects.filter(record=record).exists()
            return
        item = CustomData.objects.get(record=record)
        assert "|" not in item.module_id and "|" not in item.key
        assert item.type in {"string", "bool", "integer", "decimal", "json"}

    rolled_back(attempt)


# --- every HTML write route -------------------------------------------------------------

WRITE_ROUTES = [r for r in tenant_routes() if ROUTE_ROLES.get(r.name) in (WRITE, ADMIN)]


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=str)
def test_html_write_routes_never_fail_on_bad_input(admin_client, tenants, route):
    url = route.fill(kwarg_values(tenants.a))

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(fields=st.fixed_dictionaries(dict.fromkeys(WRITE_PAYLOAD, nasty_text)))
    def post(fields):
        def attempt():
            before = database_fingerprint()
            response = admin_client.post(url, fields, HTTP_HX_REQUEST="true")
            assert response.status_code < 500
            if response.status_code in (400, 403, 404, 409, 422):
                assert changed_tables(before, database_fingerprint()) == {}

        rolled_back(attempt)

    post()


# --- the API ----------------------------------------------------------------------------


@pytest.fixture
def api_client(tenants, client):
    key = apikeys.rotate_key(tenants.a.api_connection)
    client.defaults.update(basic(tenants.a.api_connection.connection_id, key))
    return client


@FEW
@given(body=json_values)
def test_the_api_answers_any_json_with_a_4xx_not_a_500(api_client, tenants, body):
    local_id = tenants.a.linked.local_id

    def attempt():
        for method, url in [
            ("post", "/api/v1/order"),
            ("put", f"/api/v1/order/{local_id}"),
            ("post", f"/api/v1/order/{local_id}/customdata"),
        ]:
            before = database_fingerprint()
            response = getattr(api_client, method)(
                url, json.dumps(body), content_type="application/json"
            )
            assert response.status_code < 500, (method, url, body)
            if response.status_code >= 400:
                payload = response.json()
                assert payload["detail"] and payload["code"]
                assert changed_tables(before, database_fingerprint()) == {}

    rolled_back(attempt)


@FEW
@given(
    remote_id=json_values,
    custom_key=nasty_text,
    custom_type=json_values,
    custom_value=json_values,
)
def test_the_api_refuses_bad_fields_with_a_field_error(
    api_client, tenants, remote_id, custom_key, custom_type, custom_value
):
    body = {
        "remoteId": remote_id,
        "data": {},
        "customData": {custom_key: {"type": custom_type, "value": custom_value}},
    }

    def attempt():
        before = database_fingerprint()
        response = api_client.post(
            "/api/v1/order", json.dumps(body), content_type="application/json"
        )
        assert response.status_code in (201, 403, 409, 422), response.content
        if response.status_code != 201:
            assert changed_tables(before, database_fingerprint()) == {}
            if response.status_code == 422:
                assert response.json()["errors"], response.content

    rolled_back(attempt)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b"\xff\xfe", b'{"remoteId": "a\x00b"}', b"[]", b"null", b'"text"'],
)
def test_malformed_json_is_a_400_or_422(api_client, tenants, raw):
    before = database_fingerprint()
    for url in ["/api/v1/order", f"/api/v1/order/{tenants.a.linked.local_id}/customdata"]:
        response = api_client.post(url, raw, content_type="application/json")
        if raw == b"[]" and url.endswith("/customdata"):
            # A list of custom data entries is one of the bodies it takes: none, no change.
            assert response.status_code == 200, response.content
            continue
        assert response.status_code in (400, 422), (url, raw, response.content)
        assert response.json()["detail"]
    assert changed_tables(before, database_fingerprint()) == {}


def test_domain_errors_name_their_field(world):
    with pytest.raises(DomainError) as error:
        add_reference(world.integration, "order", ReferenceInput("ok", "a\tb"), world.actor)
    assert error.value.field == "target_id"

"""No delete around the change engine in the reseller's admin: what holds remote ids (a
connection, a tenant's records) is refused with what to do instead, and the delete pages ask
the database whether such rows exist instead of collecting every one of them."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integrations.models import Connection, Tenant
from records.models import Record, RemoteId
from tests.factories import (
    ConnectionFactory,
    IntegrationFactory,
    RecordFactory,
    RemoteIdFactory,
    ResellerFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    reseller = ResellerFactory(name="Ours")
    staff = UserFactory(username="rita", is_staff=True)
    reseller.staff.add(staff)
    return TenantFactory(reseller=reseller, name="Acme AB")


@pytest.fixture
def staff_client(client, tenant):
    client.force_login(tenant.reseller.staff.get())
    return client


def delete_url(obj) -> str:
    return f"/admin/integrations/{obj._meta.model_name}/{obj.pk}/delete/"


def tables_read(queries) -> set[str]:
    """The records tables the page read whole, not just probed (EXISTS ... LIMIT 1)."""
    return {
        table
        for query in queries
        for table in ("records_remoteid", "records_record", "records_batchchange")
        if f'FROM "{table}"' in query["sql"] and "LIMIT 1" not in query["sql"]
    }


def test_a_connection_that_holds_remote_ids_is_not_deleted_and_the_page_says_what_to_do(
    staff_client, tenant
):
    erp = ConnectionFactory(tenant=tenant, name="Fortnox")
    for _ in range(30):
        RemoteIdFactory(record__tenant=tenant, connection=erp)

    with CaptureQueriesContext(connection) as page_queries:
        page = staff_client.get(delete_url(erp))

    assert page.status_code == 200
    text = page.content.decode()
    assert "Connection “Fortnox” is not deleted here." in text
    assert "“Fortnox” holds remote ids." in text
    assert "no batch, no audit entry and no undo" in text
    assert "Deactivate it instead (untick Active)" in text
    assert "delete its references first on the References page" in text
    assert 'name="post"' not in text  # no confirm button
    assert tables_read(page_queries.captured_queries) == set()

    staff_client.post(delete_url(erp), {"post": "yes"})
    assert Connection.objects.filter(pk=erp.pk).exists()
    assert RemoteId.objects.filter(connection=erp).count() == 30


def test_a_connection_without_remote_ids_is_deleted_without_listing_what_it_touches(
    staff_client, tenant
):
    api = ConnectionFactory(tenant=tenant, name="Old API")
    created_by_it = [RecordFactory(tenant=tenant, source_connection=api) for _ in range(20)]

    with CaptureQueriesContext(connection) as page_queries:
        page = staff_client.get(delete_url(api))

    text = page.content.decode()
    assert "Are you sure you want to delete the connection" in text
    assert "Connection: Old API" in text
    assert "Record:" not in text  # its records stay (their source is cleared), not listed
    assert tables_read(page_queries.captured_queries) == set()

    response = staff_client.post(delete_url(api), {"post": "yes"})
    assert response.status_code == 302
    assert not Connection.objects.filter(pk=api.pk).exists()
    assert Record.objects.filter(pk__in=[r.pk for r in created_by_it]).count() == 20


def test_a_connection_of_an_integration_is_refused_by_its_integration(staff_client, tenant):
    integration = IntegrationFactory(tenant=tenant, source__name="Shopify")

    text = staff_client.get(delete_url(integration.source)).content.decode()

    assert "“Shopify” is used by integrations: delete or change those first." in text
    staff_client.post(delete_url(integration.source), {"post": "yes"})
    assert Connection.objects.filter(pk=integration.source.pk).exists()


def test_a_tenant_with_records_is_not_deleted_and_the_page_says_what_to_do(staff_client, tenant):
    RemoteIdFactory(record__tenant=tenant)

    text = staff_client.get(delete_url(tenant)).content.decode()

    assert "Tenant “Acme AB” is not deleted here." in text
    assert "“Acme AB” has records" in text
    assert "deactivate its connections" in text
    assert "delete them on its References pages" in text
    staff_client.post(delete_url(tenant), {"post": "yes"})
    assert Tenant.objects.filter(pk=tenant.pk).exists()
    assert RemoteId.objects.filter(tenant=tenant).count() == 1


def test_a_tenant_without_records_can_be_deleted(staff_client, tenant):
    ConnectionFactory(tenant=tenant)

    page = staff_client.get(delete_url(tenant))
    assert "Tenant: Acme AB" in page.content.decode()
    staff_client.post(delete_url(tenant), {"post": "yes"})

    assert not Tenant.objects.filter(pk=tenant.pk).exists()


def test_deleting_selected_connections_is_refused_when_one_holds_remote_ids(staff_client, tenant):
    holder = ConnectionFactory(tenant=tenant, name="Fortnox")
    RemoteIdFactory(record__tenant=tenant, connection=holder)
    empty = ConnectionFactory(tenant=tenant, name="Unused")
    action = {"action": "delete_selected", "_selected_action": [holder.pk, empty.pk]}

    text = staff_client.post("/admin/integrations/connection/", action).content.decode()
    assert "The selected connections are not deleted here." in text
    assert "“Fortnox” holds remote ids." in text
    staff_client.post("/admin/integrations/connection/", {**action, "post": "yes"})

    assert Connection.objects.filter(pk__in=[holder.pk, empty.pk]).count() == 2


@pytest.mark.parametrize("model", ["record", "remoteid"])
def test_a_record_or_remote_id_delete_url_says_where_references_are_deleted(
    staff_client, tenant, model
):
    remote_id = RemoteIdFactory(record__tenant=tenant)
    obj = remote_id.record if model == "record" else remote_id

    response = staff_client.post(f"/admin/records/{model}/{obj.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert response["Location"] == f"/admin/records/{model}/"
    page = staff_client.get(response["Location"]).content.decode()
    assert "are not deleted in the admin" in page
    assert "delete it on its integration&#x27;s References page" in page
    assert RemoteId.objects.filter(pk=remote_id.pk).exists()

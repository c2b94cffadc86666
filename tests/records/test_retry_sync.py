"""Retry sync puts records back into the delta feed: their lastModified moves (audited, one
version bump), so a connector's next sync after a cursor taken before reads them again.
Offered on the record page, for the rows a References filter shows, and for a batch's records;
each previews the records by name and asks to confirm."""

import re

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory

from integrations import apikeys
from integrations.models import Connector
from records.models import AuditEntry, Batch, Record
from references.services import ReferenceInput, add_reference
from tests.api.conftest import ApiClient
from tests.factories import ConnectionFactory, RecordFactory, RemoteIdFactory
from tests.html import text_of


def order(world, shop_id, erp_id=None):
    record = RecordFactory(tenant=world.tenant, record_type="order")
    RemoteIdFactory(record=record, connection=world.shop, remote_id=shop_id)
    if erp_id:
        RemoteIdFactory(record=record, connection=world.erp, remote_id=erp_id)
    return record


def feed_ids(api, cursor=None):
    body = api.get("order", {"cursor": cursor} if cursor else {}).json()
    return [item["localId"] for item in body["items"]], body["nextCursor"]


@pytest.fixture
def api(world):
    connector = Connector.objects.create(code="api", name="API", category=Connector.Category.API)
    connection = ConnectionFactory(tenant=world.tenant, name="Warehouse API", connector=connector)
    return ApiClient(connection, apikeys.rotate_key(connection))


@pytest.mark.django_db(transaction=True)
def test_retry_sync_on_the_record_page_puts_it_back_into_the_feed(admin_client, world, api):
    record = order(world, "5001", "90001")
    order(world, "5002", "90002")
    seen, cursor = feed_ids(api)
    assert record.local_id in seen
    assert feed_ids(api, cursor)[0] == []
    before = Record.objects.get(pk=record.pk)

    detail = admin_client.get(f"/t/acme/records/{record.local_id}/").content.decode()
    assert f"/t/acme/records/{record.local_id}/retry-sync/" in detail
    preview = admin_client.get(f"/t/acme/records/{record.local_id}/retry-sync/")
    assert "Retry sync for 1 order" in text_of(preview.content.decode())
    assert "Fortnox 90001" in text_of(preview.content.decode())  # named, not by local id
    assert Record.objects.get(pk=record.pk).version == before.version  # a preview writes nothing

    done = admin_client.post(
        f"/t/acme/records/{record.local_id}/retry-sync/", {"confirm": "1"}, follow=True
    )

    assert "Queued 1 order for the next sync" in text_of(done.content.decode())
    after = Record.objects.get(pk=record.pk)
    assert after.last_modified > before.last_modified
    assert (after.version, after.last_modified_by) == (before.version + 1, "user/anna")
    entry = AuditEntry.objects.get(record=record, action=AuditEntry.Action.RETRY_SYNC)
    assert entry.actor == "user/anna"
    assert feed_ids(api, cursor)[0] == [record.local_id]


@pytest.mark.django_db
def test_retry_sync_for_the_rows_a_filter_shows_only(admin_client, world):
    linked = order(world, "5001", "90001")
    unlinked = [order(world, "5002"), order(world, "5003")]
    versions = {r.pk: r.version for r in [linked, *unlinked]}
    base = f"/t/acme/integrations/{world.integration.pk}/references/orders/"

    page = admin_client.get(base + "?linked=unlinked").content.decode()
    assert "retry-sync/?" in page and "linked=unlinked" in page
    preview = text_of(admin_client.get(base + "retry-sync/?linked=unlinked").content.decode())
    assert "Retry sync for 2 orders" in preview
    assert "Shopify 5002" in preview and "Shopify 5003" in preview and "5001" not in preview

    done = admin_client.post(
        base + "retry-sync/", {"linked": "unlinked", "confirm": "1"}, follow=True
    )

    assert "Queued 2 orders for the next sync" in text_of(done.content.decode())
    now = {r.pk: r.version for r in Record.objects.filter(pk__in=versions)}
    assert now == {linked.pk: versions[linked.pk], **{r.pk: versions[r.pk] + 1 for r in unlinked}}


@pytest.mark.django_db
def test_retry_sync_for_the_records_a_batch_changed_beside_its_undo(admin_client, world):
    order(world, "5001", "90001")
    add_reference(world.integration, "order", ReferenceInput("5009", "90009"), world.actor)
    batch = Batch.objects.filter(tenant=world.tenant).order_by("-pk").first()
    request = RequestFactory().get("/t/acme/")
    request.tenant = world.tenant
    toast = render_to_string(
        "references/partials/applied_message.html",
        {"batch": batch, "next": "/t/acme/"},
        request,
    )
    assert "Undo" in toast
    url = re.search(r'href="([^"]*retry-sync/[^"]*)"', toast).group(1).replace("&amp;", "&")
    assert url.startswith(f"/t/acme/batches/{batch.pk}/retry-sync/?next=")

    preview = text_of(admin_client.get(url).content.decode())
    assert "Retry sync for 1 order" in preview and "Shopify 5009" in preview
    done = admin_client.post(url.split("?")[0], {"confirm": "1", "next": "/t/acme/"}, follow=True)
    assert done.redirect_chain[-1][0] == "/t/acme/"
    assert "Queued 1 order for the next sync" in text_of(done.content.decode())

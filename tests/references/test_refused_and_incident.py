"""Refused writes and the incident they point to, as people see them: the record page (the
holder's and the writer's), the Health finding and its fix, the forecast, and the one sentence
on the Health overview and the tenant home when a connection was probably reset."""

import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from integrations import apikeys
from integrations.models import Connector
from records import changes
from records.audit import Actor
from records.models import Batch, Record, RefusedWrite, RemoteId
from tests.api.conftest import ApiClient
from tests.factories import RecordFactory, RemoteIdFactory
from tests.html import text_of

pytestmark = pytest.mark.django_db

RESET = "was probably reset around"


@pytest.fixture
def erp_api(world):
    """Fortnox connected through the API (its connector writes with its own key)."""
    Connector.objects.filter(pk=world.erp.connector_id).update(category=Connector.Category.API)
    world.erp.refresh_from_db()
    return ApiClient(world.erp, apikeys.rotate_key(world.erp))


def order(world, shop_id, erp_id=None, *, shop_ref=""):
    record = RecordFactory(tenant=world.tenant, record_type="order", data={"n": shop_id})
    RemoteIdFactory(record=record, connection=world.shop, remote_id=shop_id, remote_ref=shop_ref)
    if erp_id:
        RemoteIdFactory(record=record, connection=world.erp, remote_id=erp_id)
    return record


def refused_put(erp_api, record, remote_id):
    response = erp_api.put(
        f"order/{record.local_id}",
        {"remoteId": remote_id, "remoteRef": f"Faktura {remote_id}", "data": {}, "customData": {}},
    )
    assert response.status_code == 409
    return response


def page(client, path) -> str:
    return text_of(client.get(path).content.decode()).replace(" .", ".")


def health_url(world, entity="orders", name="health"):
    kwargs = {"tenant_slug": "acme", "integration_id": world.integration.pk}
    if entity:
        kwargs["entity"] = entity
    return reverse(f"references:{name}", kwargs=kwargs)


def test_the_record_pages_of_holder_and_writer_say_what_was_refused(admin_client, world, erp_api):
    holder = order(world, "5001", "90001", shop_ref="#1001")
    writer = order(world, "5002", shop_ref="#1002")
    refused_put(erp_api, writer, "90001")

    holder_page = page(admin_client, f"/t/acme/records/{holder.local_id}/")
    writer_page = page(admin_client, f"/t/acme/records/{writer.local_id}/")

    assert (
        "Fortnox tried to give its id 90001 (Faktura 90001), which this order holds, to "
        "Shopify 5002 (#1002)." in holder_page
    )
    assert (
        "Fortnox tried to give this order id 90001 (Faktura 90001), which Shopify 5001 (#1001) "
        "holds." in writer_page
    )
    # A record nothing was refused for shows no such section.
    calm = order(world, "5003", "90003")
    assert "Refused writes" not in page(admin_client, f"/t/acme/records/{calm.local_id}/")


def test_health_lists_refused_writes_and_the_forecast_says_why(admin_client, world, erp_api):
    holder = order(world, "5001", "90001")
    writers = [order(world, f"500{n}") for n in (2, 3)]
    order(world, "5009")  # unlinked, nothing refused
    refused_put(erp_api, writers[0], "90001")
    refused_put(erp_api, writers[1], "90001")

    listed = page(admin_client, health_url(world) + "?finding=refused")
    overview = page(admin_client, health_url(world, entity=None, name="health-overview"))

    assert "Refused writes" in listed and "Shopify 5002" in listed and "Shopify 5003" in listed
    assert (
        "The next sync will create 3 new orders in Fortnox; 2 of them probably exist there "
        "already: Fortnox tried to give them ids refdesk holds." in overview
    )
    # The fix unlinks the id from its holder: the connector's next write lands.
    rows = list(RefusedWrite.objects.values_list("pk", flat=True))
    fix = {"finding": "refused", "action": "unlink", "row": rows}
    preview = admin_client.post(health_url(world, name="health-fix"), fix)
    assert "Remove id 90001" in text_of(preview.content.decode())
    admin_client.post(
        health_url(world, name="health-fix"),
        {"finding": "refused", "action": "unlink", "row": rows, "confirm": "1"},
    )
    assert not RemoteId.objects.filter(record=holder, connection=world.erp).exists()
    assert "No connector was refused" in page(admin_client, health_url(world) + "?finding=refused")


def sync_id(world, record, remote_id, ref):
    """A sync writing Fortnox's id of a record (the engine keeps its fingerprint)."""
    changes.apply(
        changes.ChangeSet(
            tenant=world.tenant,
            record_type="order",
            actor=Actor.system("sync"),
            kind=Batch.Kind.SYNC,
            integration=world.integration,
            changes=[
                changes.Change(changes.Action.SET_ID, record_id=record.pk,
                               connection_id=world.erp.pk, remote_id=remote_id, remote_ref=ref)
            ],
            strict=True,
        )
    )  # fmt: skip


def test_the_health_overview_names_the_reset_once_with_the_way_to_recover(
    admin_client, world, erp_api
):
    order(world, "5100", "90100")
    # A refusal alone is not a reset.
    refused_put(erp_api, order(world, "5101"), "90100")
    overview = health_url(world, entity=None, name="health-overview")
    assert RESET not in page(admin_client, overview)

    # A sync gives one of Fortnox's ids a ref that belongs to another document: reused.
    invoice = order(world, "5102")
    sync_id(world, invoice, "90102", "Faktura 90102")
    sync_id(world, invoice, "90102", "Faktura 4")
    refused_put(erp_api, order(world, "5103"), "90102")
    order(world, "5104", "90104")
    refused_put(erp_api, order(world, "5105"), "90104")

    response = admin_client.get(health_url(world, entity=None, name="health-overview"))
    text = text_of(response.content.decode())
    assert text.count(RESET) == 1
    assert "Fortnox was probably reset around" in text
    assert "3 of its ids are gone or reused." in text
    recover = health_url(world, name="reconcile") + "?side=target"
    assert f'href="{recover}"' in response.content.decode()


def test_the_tenant_home_says_it_after_the_demo_seed_and_not_for_a_healthy_tenant(client, settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=None)
    client.login(username="admin", password="admin")
    acme = page(client, "/t/acme/")
    assert "Fortnox was probably reset around" in acme
    assert "23 of its ids are gone or reused." in acme
    assert "Recover orders of Shopify → Fortnox" in acme

    client.login(username="support", password="support")
    assert RESET not in page(client, "/t/bergstrom/")
    # The demo's refusals came through the API's own write, refused with a 409 each.
    assert RefusedWrite.objects.filter(tenant__slug="acme").count() == 20
    assert Record.objects.filter(tenant__slug="bergstrom").exists()


def test_unlinking_the_holders_is_offered_but_never_the_main_button(admin_client, world, erp_api):
    order(world, "5001", "90001")
    refused_put(erp_api, order(world, "5002"), "90001")

    html = admin_client.get(health_url(world) + "?finding=refused").content.decode()

    unlink_all = re.search(r'<button[^>]*value="unlink"[^>]*>Unlink from the holder: all', html)
    assert unlink_all, "the fix is offered for every row"
    assert "btn-primary" not in unlink_all.group(0)

"""Names, everywhere (issue 22, item 7): people by their names, records by the ids people
know, and counts and words that say exactly what happened. Each test fails on the wording
before it."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from records.audit import Actor
from records.jobs import start_job
from records.models import Job, Record
from references.services import delete_all_references, restore_batch
from tests.factories import RemoteIdFactory, UserFactory, make_reference
from tests.html import text_of

pytestmark = pytest.mark.django_db


def tab_url(world, page=""):
    return f"/t/acme/integrations/{world.integration.pk}/references/orders/{page}"


@pytest.fixture
def anna_named(world):
    world.admin.first_name, world.admin.last_name = "Anna", "Admin"
    world.admin.save()
    return world.admin


def test_the_delete_all_banner_names_the_person(admin_client, world, anna_named):
    make_reference(world.integration, source_id="5001", target_id="INV-1")
    delete_all_references(world.integration, "order", world.actor)

    page = admin_client.get(tab_url(world)).text

    assert 'deleted</strong> by <span title="user/anna">Anna Admin</span>' in page
    assert ">user/anna<" not in page


def test_the_jobs_list_names_who_started_each_job(admin_client, world, anna_named):
    start_job(
        "delete_all",
        tenant=world.tenant,
        actor=world.actor,
        description="Delete all 9 order references",
        integration=world.integration,
        record_type="order",
    )
    Job.objects.update(state=Job.State.DONE)

    page = admin_client.get("/t/acme/jobs/").text

    assert '<span title="user/anna">Anna Admin</span>' in page


def test_a_person_without_a_name_is_named_by_their_login(admin_client, world):
    make_reference(world.integration, source_id="5001", target_id="INV-1")
    delete_all_references(world.integration, "order", world.actor)

    page = admin_client.get(tab_url(world)).text

    assert '<span title="user/anna">anna</span>' in page


def test_a_history_sentence_says_just_now_not_0_minutes_ago(admin_client, world):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    restore_batch(delete_all_references(world.integration, "order", world.actor), world.actor)

    text = text_of(
        admin_client.get(tab_url(world, f"{record.local_id}/history/"), HTTP_HX_REQUEST="1").text
    )

    assert "Restored the reference deleted by anna just now (delete all)" in text
    assert "0 minutes" not in text


def import_file(client, world, content: str):
    upload = client.post(
        tab_url(world, "import/"),
        {"file": SimpleUploadedFile("links.csv", content.encode(), content_type="text/csv")},
    )
    token = re.search(r"upload=([\w-]+)", upload["Location"]).group(1)
    return token, client.post(tab_url(world, "import/apply/"), {"upload": token}, follow=True)


def test_the_import_result_keeps_why_each_line_was_refused(admin_client, world):
    make_reference(world.integration, source_id="5009", target_id="INV-9")

    _, result = import_file(admin_client, world, "source_id,target_id\n5001,INV-1\n5002,INV-9\n")

    text = text_of(result.text)
    assert "1 reference written" in text
    assert "Rejected rows 1" in text
    assert "Fortnox id INV-9 is already linked to Shopify id 5009." in text


def test_the_import_names_a_holder_the_source_does_not_know_by_its_ids(admin_client, world):
    holder = Record.objects.create(
        tenant=world.tenant, record_type="order", last_modified_by="system/x"
    )
    RemoteIdFactory(record=holder, connection=world.erp, remote_id="INV-1")
    RemoteIdFactory(record=holder, connection=world.shop.__class__.objects.create(
        tenant=world.tenant, name="WooCommerce", connector=world.shop.connector
    ), remote_id="77")  # fmt: skip

    _, result = import_file(admin_client, world, "source_id,target_id\n5001,INV-1\n")

    text = text_of(result.text)
    assert (
        "Fortnox id INV-1 already belongs to another order (known as WooCommerce 77), which "
        "Shopify does not know; see Suggested links." in text
    )
    assert holder.local_id not in text


def test_an_undone_import_says_what_it_put_back_not_restored_0(admin_client, world):
    record = make_reference(world.integration, source_id="5001")
    token, result = import_file(admin_client, world, "source_id,target_id\n5001,INV-1\n")
    from references.models import ImportUpload

    batch = ImportUpload.objects.get(token=token).batch
    restore_batch(batch, Actor.for_user(world.admin))

    text = text_of(
        admin_client.get(tab_url(world, f"{record.local_id}/history/"), HTTP_HX_REQUEST="1").text
    )

    assert "Undid the import by anna just now: removed the 1 id it added" in text
    assert "Restored 0 references" not in text


def test_the_api_409_names_the_holder_by_its_remote_ids_and_says_how_to_resolve_it(world):
    from integrations import apikeys
    from tests.api.conftest import ApiClient, api_connector
    from tests.factories import ConnectionFactory

    warehouse = ConnectionFactory(
        tenant=world.tenant, name="Warehouse API", connector=api_connector()
    )
    api = ApiClient(warehouse, apikeys.rotate_key(warehouse))
    holder = make_reference(
        world.integration, source_id="5001", target_id="INV-1", source_ref="#1001"
    )
    RemoteIdFactory(record=holder, connection=warehouse, remote_id="WH-1")

    response = api.post("order", {"remoteId": "WH-1", "data": {}})

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail.startswith(
        "Remote id WH-1 already belongs to another order in Warehouse API (known as Fortnox "
        "INV-1, Shopify 5001 (#1001))."
    )
    assert "first remove it from that one" in detail and holder.local_id not in detail
    schema = Client().get("/api/v1/openapi.json").json()
    assert "says how to resolve it" in schema["info"]["description"]


def test_admin_lists_name_records_by_a_remote_id(client, world):
    from tests.factories import ResellerFactory

    reseller = ResellerFactory(name="Ours")
    world.tenant.reseller = reseller
    world.tenant.save()
    staff = UserFactory(username="rita", is_staff=True, first_name="Rita", last_name="Reseller")
    reseller.staff.add(staff)
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    client.force_login(staff)

    page = client.get("/admin/records/record/").text

    assert "Fortnox INV-1" in page
    assert f"{record.local_id[:8]}…" not in page

"""A connector's write the API refuses because another record holds the id is kept (the first
sign of a remote reset), after the refused change rolled back; a write that passes keeps none."""

from datetime import timedelta

import pytest
from django.utils import timezone

from records import refusals
from records.models import Record, RefusedWrite
from tests.factories import RecordFactory, RemoteIdFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def holder(world, warehouse):
    record = RecordFactory(tenant=world.tenant, record_type="order")
    RemoteIdFactory(record=record, connection=warehouse, remote_id="WH-1")
    return record


def test_a_create_refused_with_409_is_kept_with_its_holder_and_who(api, warehouse, holder):
    response = api.post("order", {"remoteId": " WH-1 ", "remoteRef": "Pick 1", "data": {}})

    assert response.status_code == 409
    refused = RefusedWrite.objects.get()
    assert (refused.connection, refused.record_type, refused.remote_id, refused.remote_ref) == (
        warehouse, "order", "WH-1", "Pick 1",
    )  # fmt: skip
    assert refused.holder == holder and refused.record is None
    assert refused.actor == f"connection/{warehouse.connection_id}"
    assert Record.objects.count() == 1  # the create itself rolled back


def test_a_put_refused_with_409_is_kept_naming_the_record_written(api, warehouse, holder, world):
    writer = RecordFactory(tenant=world.tenant, record_type="order", data={"a": 1})
    body = {"remoteId": "WH-1", "data": {"a": 2}, "customData": {}}

    response = api.put(f"order/{writer.local_id}", body)

    assert response.status_code == 409
    refused = RefusedWrite.objects.get()
    assert (refused.record, refused.holder) == (writer, holder)
    writer.refresh_from_db()
    assert writer.data == {"a": 1}  # the PUT's data change rolled back, the refusal stayed


def test_a_batch_keeps_its_refused_items_only(api, warehouse, holder):
    items = [{"remoteId": "WH-1", "data": {}}, {"remoteId": "WH-2", "data": {}}]

    response = api.post("order/batch", {"items": items})

    assert [item["status"] for item in response.json()["items"]] == [409, 201]
    assert list(RefusedWrite.objects.values_list("remote_id", "holder")) == [("WH-1", holder.pk)]


def test_writes_that_pass_keep_nothing(api, holder):
    assert api.post("order", {"remoteId": "WH-2", "data": {}}).status_code == 201
    response = api.put(
        f"order/{holder.local_id}", {"remoteId": "WH-1", "data": {"b": 1}, "customData": {}}
    )
    assert response.status_code == 200
    assert api.post("order/batch", {"items": [{"remoteId": "WH-3"}]}).status_code == 200
    assert not RefusedWrite.objects.exists()


def test_refusals_are_kept_30_days_and_at_most_the_cap_per_connection(
    api, warehouse, holder, world, monkeypatch
):
    old = RefusedWrite.objects.create(
        tenant=world.tenant, connection=warehouse, record_type="order", remote_id="WH-1",
        holder=holder, actor="connection/x", refused_at=timezone.now() - timedelta(days=31),
    )  # fmt: skip
    api.post("order", {"remoteId": "WH-1", "data": {}})
    # A refused write forgets the connection's refusals older than 30 days.
    assert not RefusedWrite.objects.filter(pk=old.pk).exists()
    assert RefusedWrite.objects.count() == 1

    monkeypatch.setattr(refusals, "KEPT_PER_CONNECTION", 2)
    for _ in range(3):
        api.post("order", {"remoteId": "WH-1", "data": {}})
    assert RefusedWrite.objects.count() == 4
    assert refusals.prune(world.tenant) == 2
    assert RefusedWrite.objects.count() == 2

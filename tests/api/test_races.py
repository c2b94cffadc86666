"""Concurrent creates with the same remoteId: the database decides, exactly one wins."""

import json
import threading

import pytest
from django.db import connection as db_connection
from django.test import Client

from records import changes, services
from records.models import Record, RemoteId
from tests.factories import RecordFactory, RemoteIdFactory

from .conftest import basic

CREATORS = 6


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_concurrent_creates_with_the_same_remote_id_give_one_201_and_409s(warehouse):
    auth = basic(warehouse.connection_id, warehouse.key)
    barrier = threading.Barrier(CREATORS)
    statuses, bodies = [], []
    lock = threading.Lock()

    def create():
        # Each thread has its own database connection; all POST at the same moment.
        try:
            client = Client(HTTP_AUTHORIZATION=auth)
            barrier.wait(timeout=10)
            response = client.post(
                "/api/v1/order",
                json.dumps({"remoteId": "WH-RACE", "data": {"n": 1}}),
                content_type="application/json",
            )
            with lock:
                statuses.append(response.status_code)
                bodies.append(response.json())
        finally:
            db_connection.close()

    threads = [threading.Thread(target=create) for _ in range(CREATORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(statuses) == [201] + [409] * (CREATORS - 1)
    winner = next(body for body, status in zip(bodies, statuses, strict=True) if status == 201)
    for body, status in zip(bodies, statuses, strict=True):
        if status == 409:
            assert body["heldBy"]["localId"] == winner["localId"]
            assert winner["localId"] in body["detail"]
    assert Record.objects.count() == 1  # the losers left nothing behind
    assert RemoteId.objects.get(remote_id="WH-RACE").record.local_id == winner["localId"]


@pytest.mark.django_db
def test_a_race_lost_at_the_unique_constraint_is_the_same_409_as_the_pre_check(
    api, warehouse, world, monkeypatch
):
    """Simulate the other writer committing between our checks and our insert: the pre-check
    and the engine's plan see nothing the first time, the database constraint refuses."""
    original, calls = changes.rules.reject_taken, []

    def check_that_sees_nothing_the_first_time(*args, **kwargs):
        calls.append(args)
        if len(calls) > 1:
            original(*args, **kwargs)

    monkeypatch.setattr(services, "refuse_taken_remote_id", lambda *args, **kwargs: None)
    monkeypatch.setattr(changes.rules, "reject_taken", check_that_sees_nothing_the_first_time)
    holder = RecordFactory(tenant=world.tenant, record_type="order")
    RemoteIdFactory(record=holder, connection=warehouse, remote_id="WH-1")

    response = api.post("order", {"remoteId": "WH-1"})

    assert response.status_code == 409
    assert response.json()["heldBy"]["localId"] == holder.local_id
    assert len(calls) == 2
    assert Record.objects.count() == 1

"""An API write that a running bulk job holds up gets a clear 409 within seconds, naming the
job, with nothing written; a write of another entity type goes through at once (PostgreSQL:
SQLite runs one writer at a time)."""

import time

import pytest

from records.models import Record
from references import services
from tests.factories import IntegrationFactory, make_reference
from tests.workers import job_held_open

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

HELD_UP = (
    "Delete all 4 order references of Shopify → Fortnox by anna is running (50%). "
    "Nothing was saved; try again when it has finished."
)


@pytest.fixture(autouse=True)
def _small_job_threshold(settings):
    settings.REFDESK_JOB_THRESHOLD = 2


def timed(request):
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def test_an_api_write_held_up_by_a_job_is_409_within_seconds_and_writes_nothing(
    api, warehouse, world
):
    # The warehouse sends its orders to Fortnox too: a delete-all of Fortnox's order ids in
    # the Shopify integration changes what this integration shows.
    IntegrationFactory(tenant=world.tenant, source=warehouse, target=world.erp)
    orders = [
        make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}") for n in range(4)
    ]
    known = api.post("order", {"remoteId": "WH-1", "data": {"n": 1}}).json()
    job = services.start_delete_all_job(world.integration, "order", world.actor, 4)

    with job_held_open(job, orders[0]):
        response, seconds = timed(lambda: api.post("customer", {"remoteId": "WH-C1"}))
        assert response.status_code == 201, response.json()
        assert seconds < 2

        response, seconds = timed(lambda: api.post("order", {"remoteId": "WH-2", "data": {}}))
        assert response.status_code == 409
        assert seconds < 5
        assert response.json() == {
            "detail": HELD_UP,
            "code": "bulk_change_running",
            "errors": [],
            "heldBy": None,
        }
        assert response["Retry-After"] == "5"
        assert not Record.objects.filter(remote_ids__remote_id="WH-2").exists()

        response, seconds = timed(
            lambda: api.put(
                f"order/{known['localId']}", {"remoteId": "WH-1b", "data": {}, "customData": {}}
            )
        )
        assert response.status_code == 409
        assert seconds < 5
        assert response.json()["code"] == "bulk_change_running"

    record = Record.objects.get(local_id=known["localId"])
    assert (record.data, record.version) == ({"n": 1}, known["version"])
    job.refresh_from_db()
    assert job.state == "done"

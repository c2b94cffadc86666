"""A bulk job holds its tab (integration and entity type), not the whole integration: while it
writes one tab, people edit the other tabs at once, and an edit of its tab is refused within
seconds with a message naming the job, never a request that spins until gunicorn's timeout.

PostgreSQL: SQLite runs one writer at a time, so there a job holds every write anyway.
"""

import html
import re
import threading
import time

import pytest
from django.db import connection

from records import jobs, locks
from records.models import Job, RemoteId
from references import services
from tests.factories import make_reference
from tests.workers import job_held_open

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _small_job_threshold(settings):
    settings.REFDESK_JOB_THRESHOLD = 3


@pytest.fixture
def desk(world, admin_client):
    """Four linked orders, one linked customer, and the tab as the admin sees it (which counts
    every tab of the integration)."""
    world.orders = [
        make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}") for n in range(4)
    ]
    world.customer = make_reference(world.integration, "customer", source_id="C-1", target_id="K-1")
    assert admin_client.get(tab_url(world, "orders")).status_code == 200
    return world


def tab_url(world, entity: str) -> str:
    return f"/t/acme/integrations/{world.integration.pk}/references/{entity}/"


def edit(client, world, entity: str, record, source_id: str, target_id: str):
    """The inline edit's Save, as htmx posts it; returns the response and how long it took."""
    started = time.monotonic()
    response = client.post(
        f"{tab_url(world, entity)}{record.local_id}/edit/",
        {
            "source_id": source_id,
            "target_id": target_id,
            "source_ref": "",
            "target_ref": "",
            "version": record.version,
        },
        HTTP_HX_REQUEST="true",
    )
    return response, time.monotonic() - started


def in_a_worker(job: Job) -> threading.Thread:
    """Run a job in a thread of its own, as a second worker would."""

    def work():
        try:
            jobs.execute(job.pk, job.tenant_id)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def target_ids(world) -> set[str]:
    return set(RemoteId.objects.filter(connection=world.erp).values_list("remote_id", flat=True))


def test_while_a_job_writes_one_tab_the_others_are_edited_at_once_and_its_own_says_why(
    admin_client, desk
):
    job = services.start_delete_all_job(desk.integration, "order", desk.actor, 4)

    with job_held_open(job, desk.orders[0]):
        response, seconds = edit(admin_client, desk, "customers", desk.customer, "C-1", "K-2")
        assert response.status_code == 200, response.content.decode()
        assert seconds < 2
        assert "K-2" in target_ids(desk)

        response, seconds = edit(admin_client, desk, "orders", desk.orders[1], "S1", "T-EDITED")
        assert response.status_code == 409
        assert seconds < 5
        page = html.unescape(response.content.decode())
        assert re.search(
            r"Delete all 4 order references of Shopify → Fortnox by anna is running \(\d+%\)\. "
            r"Nothing was saved; try again when it has finished\.",
            page,
        ), page
        assert f'<a href="/t/acme/jobs/{job.pk}/">See its progress</a>' in page
        # What the person typed is still in the row, to save again later.
        assert 'value="T-EDITED"' in page
        assert "T-EDITED" not in target_ids(desk)

    job.refresh_from_db()
    assert (job.state, job.result) == ("done", {"removed": 4})
    assert target_ids(desk) == {"K-2"}


def test_a_delete_of_the_jobs_tab_says_why_in_a_toast(admin_client, desk):
    job = services.start_delete_all_job(desk.integration, "order", desk.actor, 4)

    with job_held_open(job, desk.orders[0]):
        started = time.monotonic()
        response = admin_client.post(
            f"{tab_url(desk, 'orders')}{desk.orders[2].local_id}/delete/",
            {"version": desk.orders[2].version},
            HTTP_HX_REQUEST="true",
        )
        assert time.monotonic() - started < 5
        page = html.unescape(response.content.decode())
        assert 'class="toast toast-error"' in page
        assert "Delete all 4 order references of Shopify → Fortnox by anna is running" in page
        assert f'<a href="/t/acme/jobs/{job.pk}/">See its progress</a>' in page

    job.refresh_from_db()
    assert job.state == "done"


def test_a_job_on_another_tab_runs_beside_a_held_one(desk):
    orders_job = services.start_delete_all_job(desk.integration, "order", desk.actor, 4)
    make_reference(desk.integration, "customer", source_id="C-2", target_id="K-3")
    make_reference(desk.integration, "customer", source_id="C-3", target_id="K-4")
    make_reference(desk.integration, "customer", source_id="C-4", target_id="K-5")
    customers_job = services.start_delete_all_job(desk.integration, "customer", desk.actor, 4)

    with job_held_open(orders_job, desk.orders[0]):
        beside = in_a_worker(customers_job)
        beside.join(10)
        assert not beside.is_alive()
        customers_job.refresh_from_db()
        assert (customers_job.state, customers_job.result) == ("done", {"removed": 4})
        assert Job.objects.get(pk=orders_job.pk).state == "running"

    orders_job.refresh_from_db()
    assert orders_job.state == "done"
    assert target_ids(desk) == set()


def test_a_job_waits_behind_another_of_its_tab_for_longer_than_a_person_would(
    admin_client, desk, monkeypatch
):
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", "200ms")
    first = services.start_delete_all_job(desk.integration, "order", desk.actor, 4)
    second = services.start_delete_all_job(desk.integration, "order", desk.actor, 4)

    with job_held_open(first, desk.orders[0]):
        behind = in_a_worker(second)
        time.sleep(1)  # five times what a person waits
        assert Job.objects.get(pk=second.pk).state == "queued"
        response, seconds = edit(admin_client, desk, "orders", desk.orders[1], "S1", "T-EDITED")
        assert response.status_code == 409 and seconds < 1

    behind.join(10)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.result) == ("done", {"removed": 4})
    assert (second.state, second.result) == ("done", {})  # the first had taken them all

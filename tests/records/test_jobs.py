"""Big changes as background jobs: queued, run by a real worker, progress, undo, failure, order.

The worker is the real one of the configured backend (db_worker, or an RQ worker when CI sets
TASKS_BACKEND=rq), run in this process against the test database.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections

from records import changes, jobs
from records.models import Batch, BatchChange, Job, Record, RemoteId
from references import services
from tests.factories import make_reference
from tests.workers import run_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _small_job_threshold(settings):
    settings.REFDESK_JOB_THRESHOLD = 3


@pytest.fixture(autouse=True)
def _empty_rq_queue(settings):
    if settings.TASKS_BACKEND == "rq":
        import django_rq

        django_rq.get_queue("default").empty()


def linked(world, n: int):
    for i in range(n):
        make_reference(world.integration, source_id=f"S{i}", target_id=f"T{i}")


def list_url(world):
    return f"/t/acme/integrations/{world.integration.pk}/references/orders/"


def test_a_big_delete_all_is_a_job_that_shows_progress_and_can_be_restored(admin_client, world):
    linked(world, 5)

    response = admin_client.post(f"{list_url(world)}delete-all/", {"confirm": "orders"})

    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.kind, job.state, job.total) == ("delete_all", "queued", 5)
    assert RemoteId.objects.filter(connection=world.erp).count() == 5  # nothing yet
    page = admin_client.get(list_url(world)).content.decode()
    assert "Delete all 5 order references" in page and "Waiting for a worker" in page

    run_worker()

    job.refresh_from_db()
    assert (job.state, job.done, job.total, job.result) == ("done", 5, 5, {"removed": 5})
    assert job.batch.kind == Batch.Kind.DELETE_ALL and job.batch.row_count == 5
    assert not RemoteId.objects.filter(connection=world.erp).exists()
    page = admin_client.get(list_url(world)).content.decode()
    assert "Restore 5 references" in page

    # The restore is big too: a job as well, and it puts every row back.
    admin_client.post(f"/t/acme/batches/{job.batch.pk}/restore/")
    restore = Job.objects.get(kind="restore")
    assert restore.state == "queued"
    assert "Restore 5 references" not in admin_client.get(list_url(world)).content.decode()
    run_worker()
    restore.refresh_from_db()
    assert restore.state == "done"
    assert RemoteId.objects.filter(connection=world.erp).count() == 5


def test_the_polled_status_reloads_the_page_when_the_job_ends(admin_client, world):
    linked(world, 4)
    admin_client.post(f"{list_url(world)}delete-all/", {"confirm": "orders"})
    job = Job.objects.get()
    status_url = f"/t/acme/jobs/{job.pk}/?refresh=1"

    running = admin_client.get(status_url, headers={"HX-Request": "true"})
    assert "HX-Refresh" not in running and 'hx-trigger="every 1s"' in running.text
    run_worker()
    finished = admin_client.get(status_url, headers={"HX-Request": "true"})

    assert finished["HX-Refresh"] == "true"
    assert "every 1s" not in finished.text
    toast = admin_client.get(list_url(world)).content.decode()
    assert "Delete all 4 order references of Shopify → Fortnox: done (4 removed)." in toast


def test_a_failing_job_writes_nothing_and_says_why_where_it_was_started(
    admin_client, world, monkeypatch
):
    linked(world, 4)
    admin_client.post(f"{list_url(world)}delete-all/", {"confirm": "orders"})

    def fail_after_the_deletes(*args, **kwargs):
        raise RuntimeError("disk full")

    # The target ids are already deleted in the job's transaction when this fails.
    monkeypatch.setattr(changes.bulk, "mark_changed", fail_after_the_deletes)
    run_worker()

    job = Job.objects.get()
    assert job.state == "failed"
    assert "unexpected error (RuntimeError); nothing was written" in job.error
    assert RemoteId.objects.filter(connection=world.erp).count() == 4
    assert not Batch.objects.filter(kind=Batch.Kind.DELETE_ALL).exists()
    assert not BatchChange.objects.filter(change="removed").exists()
    page = admin_client.get(list_url(world)).content.decode()
    assert "nothing was written" in page


@pytest.mark.postgres
def test_a_job_stopped_by_the_statement_timeout_says_so_not_connection_lost(
    admin_client, world, monkeypatch
):
    linked(world, 4)
    admin_client.post(f"{list_url(world)}delete-all/", {"confirm": "orders"})

    def a_statement_that_runs_too_long(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = '50ms'")
            cursor.execute("SELECT pg_sleep(2)")

    monkeypatch.setattr(changes.bulk, "mark_changed", a_statement_that_runs_too_long)
    job = Job.objects.get()
    jobs.execute(job.pk, job.tenant_id)

    job = Job.objects.get()
    assert job.state == "failed"
    assert "took longer than the database allows (statement_timeout)" in job.error
    assert "connection was lost" not in job.error
    assert RemoteId.objects.filter(connection=world.erp).count() == 4


def test_a_large_import_runs_as_a_job(admin_client, world):
    rows = "".join(f"S{i},T{i}\n" for i in range(6))
    admin_client.post(
        f"{list_url(world)}import/",
        {"file": _upload("orders.csv", f"source_id,target_id\n{rows}")},
    )
    from references.models import ImportUpload

    upload = ImportUpload.objects.get()
    admin_client.post(f"{list_url(world)}import/apply/", {"upload": upload.token})
    upload.refresh_from_db()
    assert upload.job.state == "queued" and upload.batch is None

    run_worker()

    upload.refresh_from_db()
    assert upload.job.state == "done" and upload.job.result == {"new": 6}
    assert upload.batch == upload.job.batch
    assert RemoteId.objects.filter(connection=world.erp).count() == 6


def _upload(name, text):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_the_jobs_page_lists_who_started_what(admin_client, world):
    linked(world, 4)
    admin_client.post(f"{list_url(world)}delete-all/", {"confirm": "orders"})
    run_worker()
    admin_client.force_login(world.support)  # support staff see the jobs too

    page = admin_client.get("/t/acme/jobs/").content.decode()

    assert "Delete all 4 order references" in page
    assert "user/anna" in page and "Done" in page and "4 rows" in page


@pytest.mark.postgres
def test_two_bulk_jobs_on_one_tab_never_run_at_once(world, monkeypatch):
    linked(world, 4)
    first = services.start_delete_all_job(world.integration, "order", world.actor, 4)
    second = services.start_delete_all_job(world.integration, "order", world.actor, 4)
    inside_first, release_first = threading.Event(), threading.Event()
    original = changes.bulk.mark_changed

    def hold_the_first_job(*args, **kwargs):
        if not inside_first.is_set():
            inside_first.set()
            release_first.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(changes.bulk, "mark_changed", hold_the_first_job)

    def execute(job):
        try:
            jobs.execute(job.pk, job.tenant_id)
        finally:
            connection.close()

    one = threading.Thread(target=execute, args=(first,))
    one.start()
    assert inside_first.wait(10)
    two = threading.Thread(target=execute, args=(second,))
    two.start()
    time.sleep(0.5)
    second.refresh_from_db()
    assert second.state == "queued"  # waiting behind the first, and shown so
    release_first.set()
    one.join(10)
    two.join(10)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == ("done", "done")
    assert first.result == {"removed": 4}
    assert second.result == {}  # the first had taken them all
    assert second.started_at >= first.finished_at


@pytest.mark.postgres
def test_progress_is_visible_while_the_job_holds_its_transaction(world, monkeypatch):
    linked(world, 4)
    job = services.start_delete_all_job(world.integration, "order", world.actor, 4)
    seen = {}
    original = changes.bulk.mark_changed

    def look_from_outside(*args, **kwargs):
        # Another connection (the web page) reads the job while the writes are uncommitted.
        other = connections.create_connection("default")
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT state, phase, done FROM records_job WHERE tenant_id = %s AND id = %s",
                [job.tenant_id, job.pk],
            )
            seen["job"] = cursor.fetchone()
            cursor.execute(
                "SELECT count(*) FROM records_remoteid WHERE tenant_id = %s", [job.tenant_id]
            )
            seen["remote_ids"] = cursor.fetchone()[0]
        other.close()
        return original(*args, **kwargs)

    monkeypatch.setattr(changes.bulk, "mark_changed", look_from_outside)
    jobs.execute(job.pk, job.tenant_id)

    assert seen["job"] == ("running", "Marking the records changed", 2)
    assert seen["remote_ids"] == 8  # the deletes are not visible before the commit


@contextmanager
def worker_killed_mid_job(world):
    """A real worker process, killed with SIGKILL while its job waits inside the apply:
    the block runs after the kill, with the dead worker's session ended."""
    linked(world, 4)
    job = services.start_delete_all_job(world.integration, "order", world.actor, 4)
    record = Record.objects.order_by("pk").first()
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        # The job deletes the target ids, then waits to mark this record changed.
        cursor.execute(
            "SELECT 1 FROM records_record WHERE tenant_id = %s AND id = %s FOR UPDATE",
            [record.tenant_id, record.pk],
        )
    env = {**os.environ, "DATABASE_URL": _database_url(), "DEBUG": "1"}
    command = (
        ["rqworker", "default", "--job-class", "django_tasks_rq.Job"]
        if settings.TASKS_BACKEND == "rq"
        else ["db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.1"]
    )
    # Its own process group: killing it is a machine going away, RQ's forked work horse too.
    worker = subprocess.Popen(
        [sys.executable, "manage.py", *command],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.phase == "Marking the records changed":
                break
            time.sleep(0.1)
        assert job.phase == "Marking the records changed", job.phase
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        # RQ runs the job in a forked work horse in a session of its own (os.setsid): a machine
        # going away takes it too, so kill the process that claimed the job and wait for it.
        job.refresh_from_db()
        claimed_by = int(job.worker.split(":")[1])
        with contextlib.suppress(ProcessLookupError):
            os.kill(claimed_by, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while jobs._process_alive(claimed_by) and time.monotonic() < deadline:
            time.sleep(0.05)
        # PostgreSQL notices a vanished client only when it next talks to it: end the dead
        # worker's session as it would, so its open transaction rolls back now and cannot
        # race the test's teardown (a TRUNCATE of every table) for locks.
        with blocker.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND pid <> %s",
                [connection.connection.info.backend_pid],
            )
    finally:
        blocker.rollback()
        blocker.close()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    yield job


@pytest.mark.postgres
def test_a_worker_killed_mid_job_leaves_nothing_half_applied(world):
    with worker_killed_mid_job(world) as job:
        assert RemoteId.objects.filter(connection=world.erp).count() == 4
        assert not Batch.objects.filter(kind=Batch.Kind.DELETE_ALL).exists()
        job.refresh_from_db()
        assert job.state == "running" and job.batch is None  # its page says it stopped


@pytest.mark.postgres
def test_the_sweeper_fails_a_killed_worker_s_job_restartable_and_it_runs_again(admin_client, world):
    with worker_killed_mid_job(world) as job:
        out = StringIO()
        call_command("jobs", "--requeue", stdout=out)

        job.refresh_from_db()
        assert (job.state, job.restartable) == ("failed", True)
        assert f"Job {job.pk}: failed, its worker died; it can be restarted." in out.getvalue()
        page = admin_client.get(list_url(world)).content.decode()
        assert "Its worker stopped while it ran" in page and "nothing was written" in page

        call_command("jobs", "--restart", str(job.pk), stdout=StringIO())
        run_worker()

        job.refresh_from_db()
        assert (job.state, job.result) == ("done", {"removed": 4})
        assert not RemoteId.objects.filter(connection=world.erp).exists()
        # Restarted once: a second restart of a done job is refused.
        with pytest.raises(CommandError, match="not failed restartable"):
            call_command("jobs", "--restart", str(job.pk))


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


# --- exactly once: a job's task delivered twice, or never -------------------------------------


def test_a_task_delivered_twice_runs_once_and_done_stays_done(admin_client, world):
    linked(world, 5)
    admin_client.post(f"{list_url(world)}delete-all/", {"confirm": "orders"})
    job = Job.objects.get()
    jobs.run_job.enqueue(job.pk)  # the queue delivers the same job a second time

    run_worker()

    job.refresh_from_db()
    assert (job.state, job.result, job.batch.row_count) == ("done", {"removed": 5}, 5)
    assert Batch.objects.filter(kind=Batch.Kind.DELETE_ALL).count() == 1
    admin_client.post(f"/t/acme/batches/{job.batch.pk}/restore/")
    restore = Job.objects.get(kind="restore")
    jobs.run_job.enqueue(restore.pk, restore.tenant_id)
    run_worker()
    assert jobs.execute(restore.pk, restore.tenant_id) == "skipped"  # and once more, late
    restore.refresh_from_db()
    assert (restore.state, restore.error) == ("done", "")
    assert RemoteId.objects.filter(connection=world.erp).count() == 5


@pytest.mark.postgres
def test_two_deliveries_at_once_run_the_job_once(admin_client, world):
    """Both arrive while the job waits for its tab (behind another change, shown queued):
    only the one that claimed it runs it."""
    linked(world, 4)
    admin_client.get(list_url(world))  # the tab is counted: its lock row exists
    job = services.start_delete_all_job(world.integration, "order", world.actor, 4)
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM records_referencecount WHERE tenant_id = %s AND integration_id = %s "
            "AND record_type = 'order' FOR UPDATE",
            [world.tenant.pk, world.integration.pk],
        )
    results = []

    def deliver():
        try:
            results.append(jobs.execute(job.pk, job.tenant_id))
        finally:
            connection.close()

    deliveries = [threading.Thread(target=deliver) for _ in range(2)]
    try:
        for delivery in deliveries:
            delivery.start()
        time.sleep(0.5)
        job.refresh_from_db()
        assert job.state == "queued"  # waiting for the tab, and shown so
    finally:
        blocker.rollback()
        blocker.close()
        for delivery in deliveries:
            delivery.join(20)

    assert sorted(results) == ["done", "skipped"]
    job.refresh_from_db()
    assert (job.state, job.result, job.batch.row_count) == ("done", {"removed": 4}, 4)
    assert Batch.objects.filter(kind=Batch.Kind.DELETE_ALL).count() == 1


class QueueDown:
    """The queue as it is when Redis is down: every enqueue fails."""

    def enqueue(self, *args, **kwargs):
        raise ConnectionError("Redis is down")


def test_a_job_whose_enqueue_failed_after_the_commit_is_queued_again_by_the_sweeper(
    admin_client, world, monkeypatch, settings
):
    linked(world, 5)
    monkeypatch.setattr(jobs, "run_job", QueueDown())

    response = admin_client.post(f"{list_url(world)}delete-all/", {"confirm": "orders"})

    assert response.status_code == 302  # committed: the queue's failure is not the user's
    job = Job.objects.get()
    assert (job.state, job.task_id) == ("queued", "")
    monkeypatch.undo()  # the queue is back
    run_worker()
    job.refresh_from_db()
    assert job.state == "queued"  # nobody had it

    settings.REFDESK_JOB_REQUEUE_AFTER = 0
    out = StringIO()
    call_command("jobs", "--requeue", stdout=out)
    assert out.getvalue() == f"Job {job.pk}: queued again (no worker had picked it up).\n"
    run_worker()

    job.refresh_from_db()
    assert (job.state, job.result) == ("done", {"removed": 5})
    assert not RemoteId.objects.filter(connection=world.erp).exists()


def test_the_sweeper_leaves_a_job_that_waits_in_the_queue_and_a_live_worker_s_job(world, settings):
    settings.REFDESK_JOB_REQUEUE_AFTER = 0
    linked(world, 4)
    waiting = services.start_delete_all_job(world.integration, "order", world.actor, 4)
    claimed_by_me = services.start_delete_all_job(world.integration, "article", world.actor, 4)
    assert jobs.claim(
        claimed_by_me.pk, claimed_by_me.tenant_id
    )  # this process: a worker that lives

    assert jobs.sweep() == jobs.Swept(requeued=[], failed=[])

    run_worker()
    waiting.refresh_from_db()
    assert waiting.state == "done"
    assert Job.objects.get(pk=claimed_by_me.pk).state == "queued"  # still its worker's

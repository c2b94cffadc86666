"""Run the background jobs a test queued, with the configured backend's own worker; or one
job held open inside its transaction, as a long job is while people go on working."""

import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

from records import jobs
from records.models import Job


def run_worker():
    """Run every queued task with the configured backend's own worker, then return."""
    if settings.TASKS_BACKEND == "rq":
        call_command(
            "rqworker",
            "default",
            burst=True,
            job_class="django_tasks_rq.Job",
            worker_class="rq.SimpleWorker",
        )
    else:
        call_command("db_worker", batch=True, startup_delay=False, interval=0.1)


@contextmanager
def job_held_open(job: Job, record, *, phase: str = "Marking the records changed"):
    """Run `job` in a thread of its own (a worker) and keep it inside its transaction, locks
    taken and rows written, until the block ends: another connection holds `record`, which
    the job waits for when it reaches `phase`. PostgreSQL (a second writer at the same time).
    """
    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM records_record WHERE tenant_id = %s AND id = %s FOR UPDATE",
            [record.tenant_id, record.pk],
        )

    def work():
        try:
            jobs.execute(job.pk, job.tenant_id)
        finally:
            connection.close()

    worker = threading.Thread(target=work, name=f"job-{job.pk}")
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while Job.objects.get(pk=job.pk).phase != phase:
            assert time.monotonic() < deadline, f"job {job.pk} never reached {phase!r}"
            time.sleep(0.05)
        time.sleep(0.2)  # from the phase's progress write to the statement that waits
        yield
    finally:
        holder.rollback()
        holder.close()
        worker.join(30)
        assert not worker.is_alive(), f"job {job.pk} did not finish"

"""Run the background jobs a test queued, with the configured backend's own worker."""

from django.conf import settings
from django.core.management import call_command


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

"""Look after background jobs: queue again those no worker picked up, fail (restartable) those
whose worker died, and restart one.

    manage.py jobs --requeue              # once (cron), or:
    manage.py jobs --requeue --every 60   # beside the workers, under the process manager
    manage.py jobs --restart 42           # a job that failed restartable, queued again
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from common.citus.tables import fan_out_allowed
from records import jobs
from records.models import Job


class Command(BaseCommand):
    help = "Sweep background jobs (--requeue) or restart one that failed restartable (--restart)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--requeue",
            action="store_true",
            help="Queue again jobs no worker picked up; fail, restartable, jobs whose worker died.",
        )
        parser.add_argument(
            "--every", type=float, metavar="SECONDS", help="With --requeue: sweep forever."
        )
        parser.add_argument("--restart", type=int, metavar="JOB_ID", help="Queue this job again.")

    def handle(self, *args, requeue=False, every=None, restart=None, **options):
        if restart is not None:
            self._restart(restart)
        elif requeue:
            while True:
                self._sweep()
                if not every:
                    return
                connection.close()  # a fresh connection each round survives a database restart
                time.sleep(every)
        else:
            raise CommandError("Say what to do: --requeue or --restart JOB_ID.")

    def _sweep(self):
        swept = jobs.sweep()
        for job_id in swept.requeued:
            self.stdout.write(f"Job {job_id}: queued again (no worker had picked it up).")
        for job_id in swept.failed:
            self.stdout.write(f"Job {job_id}: failed, its worker died; it can be restarted.")

    def _restart(self, job_id):
        with fan_out_allowed():  # an operator names a job by its id alone: every shard
            job = Job.objects.filter(pk=job_id).first()
        if job is None:
            raise CommandError(f"No job {job_id}.")
        if not jobs.restart(job):
            raise CommandError(
                f"Job {job_id} is {job.state}, not failed restartable: it is not started again."
            )
        self.stdout.write(f"Job {job_id}: queued again.")

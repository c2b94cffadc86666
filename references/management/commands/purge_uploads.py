"""Delete what is left of uploads nobody finished: import files never applied and reconcile
reports, once older than a day (a job still working on one keeps it).

python manage.py purge_uploads               # once (cron, a systemd timer)
python manage.py purge_uploads --every 3600  # beside the job worker, until stopped
"""

import time

from django.core.management.base import BaseCommand

from references.models import ImportUpload, ReconcileUpload


class Command(BaseCommand):
    help = "Delete import uploads and reconcile reports older than a day."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every",
            type=int,
            default=0,
            help="Repeat every this many seconds (0: run once and exit).",
        )

    def handle(self, *args, **options):
        while True:
            imports = ImportUpload.purge_expired()
            reports = ReconcileUpload.purge_expired()
            self.stdout.write(f"Purged {imports} import uploads and {reports} reconcile reports.")
            if options["every"] <= 0:
                return
            time.sleep(options["every"])

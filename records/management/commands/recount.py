"""Recount every integration's references and say where the kept counts differed.

The change engine keeps the counts (records.counts) in the same transaction as each change;
this proves it, and repairs them after anything that wrote past the engine (a bulk load).
"""

from django.core.management.base import BaseCommand

from integrations.models import Tenant
from records.counts import recount_all


class Command(BaseCommand):
    help = (
        "Recount linked, unlinked and lost references; report and fix any kept count that differed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (its slug).")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Exit with status 1 if any kept count differed (they are fixed either way).",
        )

    def handle(self, *args, tenant=None, check=False, **options):
        scope = Tenant.objects.get(slug=tenant) if tenant else None
        differed = recount_all(scope)
        for integration, record_type, kept, counted in differed:
            was = (
                f"{kept.linked} linked, {kept.unlinked} unlinked, {kept.lost} lost"
                if kept
                else "not counted yet"
            )
            self.stdout.write(
                f"{integration.tenant.slug} / {integration} / {record_type}: was {was}; now "
                f"{counted.linked} linked, {counted.unlinked} unlinked, {counted.lost} lost"
            )
        missing = sum(1 for *_, kept, _ in differed if kept is None)
        wrong = len(differed) - missing
        self.stdout.write(f"Recounted. {wrong} kept count(s) differed, {missing} not counted yet.")
        if check and wrong:
            raise SystemExit(1)

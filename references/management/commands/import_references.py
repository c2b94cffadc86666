"""Import references from a CSV file in the shell: the same plan and apply as the upload page.

python manage.py import_references --tenant acme --integration 3 --entity orders file.csv
python manage.py import_references ... --dry-run       # counts and rejected rows only
"""

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from common.entities import SLUGS, EntityType, record_type_of
from common.errors import DomainError
from integrations.models import Integration, Tenant
from records.audit import Actor
from references.imports import Kind, apply_import, decode_csv, parse_csv
from references.imports import plan_import as plan_rows

SHOWN_REJECTED = 50


def record_type_for(value: str) -> str:
    """`orders`, `Orders` or `order` all mean the record type `order`."""
    wanted = value.strip().lower()
    if wanted in EntityType.values:
        return wanted
    if record_type := record_type_of(wanted):
        return record_type
    raise CommandError(f"Unknown entity {value!r}; use one of {', '.join(SLUGS.values())}.")


class Command(BaseCommand):
    help = "Import references (source_id,target_id[,source_ref,target_ref]) from a CSV file."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file (UTF-8, comma or semicolon separated).")
        parser.add_argument("--tenant", required=True, help="Tenant slug, e.g. acme.")
        parser.add_argument("--integration", required=True, type=int, help="Integration id.")
        parser.add_argument("--entity", required=True, help=", ".join(SLUGS.values()) + ".")
        parser.add_argument("--dry-run", action="store_true", help="Show the plan; write nothing.")
        parser.add_argument(
            "--as-user",
            help="Username recorded as the actor (default: system/import_references).",
        )

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        integration = (
            Integration.objects.for_tenant(tenant)
            .select_related("tenant", "source", "target")
            .filter(pk=options["integration"])
            .first()
        )
        if integration is None:
            raise CommandError(f"Tenant {tenant.slug} has no integration {options['integration']}.")
        record_type = record_type_for(options["entity"])
        actor = self.actor(tenant, options.get("as_user"))
        path = Path(options["file"])
        try:
            text = decode_csv(path.read_bytes())
            plan = plan_rows(integration, record_type, parse_csv(text))
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}.") from None
        except DomainError as error:
            raise CommandError(error.message) from None
        self.report(plan)
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was written.")
            return
        if not plan.to_write:
            self.stdout.write("Nothing to import.")
            return
        try:
            result = apply_import(
                integration,
                record_type,
                text,
                actor,
                filename=path.name,
                progress=self.progress,
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        self.stderr.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.written} references as batch {result.batch.pk} "
                f"({result.counts[Kind.NEW]} new, {result.counts[Kind.CHANGE]} changed). "
                "Undo it from the References page or restore_batch()."
            )
        )

    def actor(self, tenant, username):
        if not username:
            return Actor.system("import_references")
        user = get_user_model().objects.filter(
            username=username, memberships__tenant=tenant, memberships__role="admin"
        )
        if not user.exists():
            raise CommandError(f"{username} is not an admin of {tenant.slug}.")
        return Actor("user", username)

    def report(self, plan):
        counts = plan.counts
        self.stdout.write(
            f"{counts[Kind.NEW]} new, {counts[Kind.CHANGE]} changed, "
            f"{counts[Kind.UNCHANGED]} unchanged, {counts[Kind.REJECTED]} rejected."
        )
        if plan.ignored_columns:
            self.stdout.write(f"Ignored columns: {', '.join(plan.ignored_columns)}.")
        rejected = plan.of(Kind.REJECTED)
        for row in rejected[:SHOWN_REJECTED]:
            self.stdout.write(f"  line {row.line}: {row.reason}")
        if len(rejected) > SHOWN_REJECTED:
            self.stdout.write(f"  ... and {len(rejected) - SHOWN_REJECTED} more rejected rows.")

    def progress(self, phase: str, done: int, total: int, width: int = 30):
        if not total:
            return
        filled = int(width * done / total)
        bar = "#" * filled + "." * (width - filled)
        percent = 100 * done // total
        line = f"\r[{bar}] {percent:3d}% {done:,}/{total:,} {phase:<20}"
        self.stderr.write(line, ending="")
        if hasattr(self.stderr, "flush"):
            self.stderr.flush()
        elif hasattr(sys.stderr, "flush"):
            sys.stderr.flush()

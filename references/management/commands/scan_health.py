"""Start the Health scans that are due: run it periodically (cron, a systemd timer).

python manage.py scan_health            # every large integration whose scan is due
python manage.py scan_health --tenant acme

Opening a Health page never starts a scan (a GET writes nothing); "Scan now" on the page does,
and so does this command, for the entity types of large integrations whose latest scan is
missing or older than an hour (references.findings.scans). It also keeps the refused writes
bounded (records.refusals.prune: at most 100k per connection and type, none over 30 days).
"""

from django.core.management.base import BaseCommand

from integrations.models import Integration, Tenant
from records import refusals
from records.audit import Actor
from references.findings import findings_of, scans

ACTOR = Actor.system("health-scan")


class Command(BaseCommand):
    help = "Start a Health scan job for each large integration whose scan is due."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (its slug).")

    def handle(self, *args, **options):
        integrations = Integration.objects.select_related("tenant", "source", "target")
        if options.get("tenant"):
            integrations = integrations.filter(tenant__slug=options["tenant"])
        started = 0
        for integration in integrations:
            started += start_due_scan(integration) is not None
        self.stdout.write(f"Started {started} scan job{'s' * (started != 1)}.")
        tenants = Tenant.objects.all()
        if options.get("tenant"):
            tenants = tenants.filter(slug=options["tenant"])
        pruned = sum(refusals.prune(tenant) for tenant in tenants)
        if pruned:
            self.stdout.write(f"Forgot {pruned} old refused writes.")


def start_due_scan(integration):
    """The scan job of the integration's due entity types; None when none is due or its scan
    runs already."""
    if scans.running_scan(integration) is not None:
        return None
    due, scanned = [], 0
    for record_type in integration.synced_entity_types:
        scanned = sum(f.scanned for f in findings_of(integration, record_type))
        if scans.scan_is_due(integration, record_type, scanned):
            due.append(record_type)
    if not due:
        return None
    return scans.start_scan(integration, due, ACTOR, scanned)

"""Two tenants with everything a route could point at, and a snapshot of every table.

Tenant A ("acme", the `world` fixture) is the tenant the test acts as; tenant B ("other") owns
the objects whose ids go into the URLs. B's ids and refs start with SECRET so a response that
shows any of them is caught.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.core.serializers.json import DjangoJSONEncoder

from integrations.models import Connector
from records.audit import Actor
from records.custom_data import CustomDataInput, set_custom_data
from records.jobs import start_job
from records.models import AuditEntry, Batch, CustomData, ReferenceCount
from references.services import ReferenceInput, add_reference, delete_reference
from tests.factories import (
    ConnectionFactory,
    CustomDataFactory,
    RecordFactory,
    RemoteIdFactory,
    UserFactory,
    make_reference,
)

SECRET = "SECRET"


class TenantObjects:
    """One tenant's integration, records, custom data, batches and audit entries."""

    def __init__(self, tenant, integration, actor: Actor, marker: str):
        self.tenant = tenant
        self.integration = integration
        self.marker = marker
        self.linked = make_reference(
            integration, "order", source_id=f"{marker}-S1", target_id=f"{marker}-T1"
        )
        self.unlinked = make_reference(integration, "order", source_id=f"{marker}-S2")
        self.added = add_reference(
            integration, "order", ReferenceInput(f"{marker}-S3", f"{marker}-T3"), actor
        )
        to_delete = add_reference(
            integration, "order", ReferenceInput(f"{marker}-S4", f"{marker}-T4"), actor
        )
        self.batch = delete_reference(integration, to_delete, actor)
        self.job = start_job(
            "restore",
            tenant=tenant,
            actor=actor,
            integration=integration,
            record_type="order",
            params={"batch_id": self.batch.pk},
            total=1,
            description=f"Restore {marker}-T4",
        )
        set_custom_data(
            self.linked,
            [CustomDataInput("x-notes", f"{marker}-key", "string", f"{marker}-value")],
            actor,
        )
        self.custom_data = CustomData.objects.for_tenant(tenant).get(record=self.linked)
        self.scoped_custom_data = CustomDataFactory(
            record=self.linked,
            connection=integration.source,
            module_id="x-scoped",
            key=f"{marker}-scoped",
        )
        self.api_connection = ConnectionFactory(
            tenant=tenant,
            name=f"{marker} API",
            connector=Connector.objects.get_or_create(
                code="api", defaults={"name": "API connector", "category": "api"}
            )[0],
        )
        self.api_remote_id = RemoteIdFactory(
            record=self.linked, connection=self.api_connection, remote_id=f"{marker}-API1"
        )
        self.audit_entry = AuditEntry.objects.for_tenant(tenant).filter(record=self.added).first()
        self.other_record = RecordFactory(tenant=tenant, record_type="invoice")


@pytest.fixture
def tenants(world):
    """Tenant A (acme) and tenant B (other), each with a full set of objects."""
    world.other_admin = world.outsider
    world.other_tenant.name = f"{SECRET} Other Oy"
    world.other_tenant.save()
    world.other_tenant.reseller.name = f"{SECRET} Reseller"
    world.other_tenant.reseller.save()
    world.a = TenantObjects(world.tenant, world.integration, world.actor, "acme")
    world.b = TenantObjects(
        world.other_tenant, world.other_integration, Actor.for_user(world.outsider), SECRET
    )
    world.reseller_staff = UserFactory(username="rita", is_staff=True)
    world.tenant.reseller.staff.add(world.reseller_staff)
    return world


def kwarg_values(objects: TenantObjects, *, tenant_slug: str | None = None) -> dict[str, str]:
    """URL kwarg name -> the value that points at `objects` (one tenant's world).

    A route with a kwarg that is not here fails the security tests (UnknownKwarg): add it.
    """
    linked = objects.linked
    return {
        "tenant_slug": tenant_slug or objects.tenant.slug,
        "integration_id": objects.integration.pk,
        "integration": objects.integration.pk,
        "entity": "orders",
        "record_type": "order",
        "local_id": linked.local_id,
        "record_id": linked.pk,
        "batch_id": objects.batch.pk,
        "job_id": objects.job.pk,
        "batch": objects.batch.pk,
        "custom_data_id": objects.custom_data.pk,
        "connection_id": objects.api_connection.connection_id,
        "remote_id": f"{objects.marker}-S1",
        "audit_id": objects.audit_entry.pk,
        "entry_id": objects.audit_entry.pk,
    }


# --- what was written -------------------------------------------------------------------

# Tables a read or a refused request may legitimately touch.
# Sessions, and the kept reference counts, which a page fills in when it first reads them.
VOLATILE = {Session, ReferenceCount}
VOLATILE_FIELDS = {"last_login"}


def database_fingerprint() -> dict[str, str]:
    """A digest of every row of every table (not only counts: an edit keeps the count)."""
    fingerprint = {}
    for model in apps.get_models():
        if model in VOLATILE or model._meta.proxy:
            continue
        fields = [f.attname for f in model._meta.concrete_fields if f.name not in VOLATILE_FIELDS]
        rows = list(model._default_manager.order_by("pk").values_list(*fields))
        digest = hashlib.sha256(json.dumps(rows, cls=DjangoJSONEncoder).encode()).hexdigest()
        fingerprint[model._meta.label] = f"{len(rows)} rows {digest[:12]}"
    return fingerprint


def changed_tables(before: dict, after: dict) -> dict:
    return {
        label: (before[label], after.get(label))
        for label in before
        if before[label] != after.get(label)
    }


# A form payload that satisfies most of our forms, so that a view missing its tenant or role
# check would really write something (and the test would see it).
WRITE_PAYLOAD = {
    "source_id": "PAYLOAD-S",
    "target_id": "PAYLOAD-T",
    "source_ref": "",
    "target_ref": "",
    "version": "1",
    "confirm": "orders",
    "confirm_text": "orders",
    "module_id": "x-payload",
    "key": "payload",
    "type": "string",
    "value": "payload",
    "remote_id": "PAYLOAD-R",
    "remote_ref": "",
    "q": "",
}


def count_batches(tenant) -> int:
    return Batch.objects.for_tenant(tenant).count()

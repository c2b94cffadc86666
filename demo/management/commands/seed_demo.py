"""Idempotent demo data: a reseller, two tenants, connectors, integrations, thousands of records."""

import contextlib
import random
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from common.entities import EntityType
from integrations import apikeys
from integrations.models import Connection, Connector, Integration, Membership, Reseller, Tenant
from records import changes
from records.audit import Actor
from records.counts import recount_all
from records.errors import Conflict
from records.models import AuditEntry, Batch, CustomData, Record, RemoteId
from records.services import create_record_with_remote_id, update_record
from references.services import (
    ReferenceInput,
    add_reference,
    delete_all_references,
    delete_reference,
    edit_reference,
)

CONNECTORS = [
    ("shopify", "Shopify", Connector.Category.ECOMMERCE, True),
    ("woocommerce", "WooCommerce", Connector.Category.ECOMMERCE, True),
    ("fortnox", "Fortnox", Connector.Category.ERP, True),
    ("visma", "Visma eEkonomi", Connector.Category.ERP, True),
    ("api", "API connector", Connector.Category.API, False),
]
ALL_TYPES = list(EntityType.values)
# Per entity type of the main integration: how many records, and how many are unlinked.
VOLUME = {"article": 600, "customer": 500, "order": 1500, "stock": 400}
UNLINKED_SHARE = 0.05
# Login, password and the name pages show for them ("Anna Admin", not "admin").
DEMO_USERS = [
    ("admin", "admin", "Anna", "Admin"),
    ("support", "support", "Sam", "Support"),
    ("reseller", "reseller", "Rita", "Reseller"),
]
SEED_ACTOR = Actor.system("seed_demo")
SYNC_ACTOR = Actor.system("sync")
PEOPLE = ["user/anna", "user/erik", "system/sync", "connection/{api}"]


class Command(BaseCommand):
    help = "Load realistic demo data (safe to run again: it only adds what is missing)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Create the demo users (with well-known passwords) even when DEBUG is off.",
        )
        parser.add_argument("--seed", type=int, default=1234, help="Random seed for ids.")

    def handle(self, *args, allow_without_debug=False, seed=1234, **options):
        if not settings.DEBUG and not allow_without_debug:
            raise CommandError(
                "Refusing to create demo users with known passwords while DEBUG is off. "
                "Pass --allow-without-debug if this really is a throwaway environment."
            )
        self.random = random.Random(seed)
        with transaction.atomic():
            world = self.build_world()
            created = self.build_records(world)
            self.build_users(world)
        # The kept reference counts (records.counts), counted afresh after a (re)seed.
        for tenant in Tenant.objects.filter(slug__in=["acme", "bergstrom"]):
            recount_all(tenant)
        self.report(world, created)

    # --- structure -------------------------------------------------------------------

    def build_world(self) -> dict:
        connectors = {}
        for code, name, category, native in CONNECTORS:
            connectors[code], _ = Connector.objects.get_or_create(
                code=code, defaults={"name": name, "category": category, "is_native": native}
            )
        reseller, _ = Reseller.objects.get_or_create(name="Nordic Commerce Partners")
        acme, _ = Tenant.objects.get_or_create(
            slug="acme", defaults={"name": "Acme AB", "reseller": reseller}
        )
        bergstrom, _ = Tenant.objects.get_or_create(
            slug="bergstrom", defaults={"name": "Bergström Handel", "reseller": reseller}
        )

        def connection(tenant, code, name):
            obj, _ = Connection.objects.get_or_create(
                tenant=tenant, name=name, defaults={"connector": connectors[code]}
            )
            return obj

        shopify = connection(acme, "shopify", "Shopify")
        woo = connection(acme, "woocommerce", "WooCommerce Outlet")
        fortnox = connection(acme, "fortnox", "Fortnox")
        api = connection(acme, "api", "Warehouse API")
        b_shopify = connection(bergstrom, "shopify", "Shopify")
        b_visma = connection(bergstrom, "visma", "Visma eEkonomi")

        def integration(tenant, source, target, types):
            obj, _ = Integration.objects.get_or_create(
                tenant=tenant,
                source=source,
                target=target,
                defaults={"name": f"{source.name} → {target.name}", "entity_types": types},
            )
            return obj

        return {
            "reseller": reseller,
            "acme": acme,
            "bergstrom": bergstrom,
            "api": api,
            "main": integration(acme, shopify, fortnox, ALL_TYPES),
            "outlet": integration(acme, woo, fortnox, ["article", "customer", "order"]),
            "bergstrom_main": integration(bergstrom, b_shopify, b_visma, ALL_TYPES),
        }

    def build_users(self, world):
        User = get_user_model()
        users = {}
        for username, password, first_name, last_name in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "email": f"{username}@example.com",
                    "first_name": first_name,
                    "last_name": last_name,
                },
            )
            if created:
                user.set_password(password)
                user.save()
            users[username] = user
        roles = [
            (users["admin"], world["acme"], Membership.Role.ADMIN),
            (users["support"], world["acme"], Membership.Role.SUPPORT),
            (users["support"], world["bergstrom"], Membership.Role.SUPPORT),
        ]
        for user, tenant, role in roles:
            Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": role})
        reseller_user = users["reseller"]
        if not reseller_user.is_staff:
            reseller_user.is_staff = True
            reseller_user.save(update_fields=["is_staff"])
        world["reseller"].staff.add(reseller_user)

    # --- records ---------------------------------------------------------------------

    def build_records(self, world) -> int:
        created = 0
        for key, scale in (("main", 1.0), ("outlet", 0.15), ("bergstrom_main", 0.2)):
            integration = world[key]
            if (
                Record.objects.for_tenant(integration.tenant)
                .filter(remote_ids__connection=integration.source)
                .exists()
            ):
                continue
            for record_type in integration.synced_entity_types:
                created += self.bulk_references(
                    integration, record_type, int(VOLUME[record_type] * scale), world
                )
        if created:
            self.known_to_three(world)
            self.recent_history(world["main"])
            self.custom_data(world)
            self.warehouse_orders(world)
            self.suggestion_twins(world["main"])
            self.health_cases(world)
            self.analyze()
        return created

    @staticmethod
    def analyze():
        """Give PostgreSQL's planner statistics for the tables just bulk-loaded.

        Until autovacuum gets to them the planner takes them for empty, and the suggestions
        query then ran for 100 s instead of 20 ms on the demo's 4,000 records.
        """
        if connection.vendor != "postgresql":
            return
        tables = [model._meta.db_table for model in (Record, RemoteId, CustomData)]
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")

    def bulk_references(self, integration, record_type, count, world) -> int:
        now = timezone.now()
        tenant = integration.tenant
        people = [p.format(api=world["api"].connection_id) for p in PEOPLE]
        records = [
            Record(
                tenant=tenant,
                record_type=record_type,
                data=self.record_data(record_type, index),
                created_at=now - timedelta(days=90),
                last_modified=now - timedelta(minutes=self.random.randint(60, 60 * 24 * 60)),
                last_modified_by=self.random.choice(people),
                record_source=str(SEED_ACTOR),
            )
            for index in range(count)
        ]
        Record.objects.bulk_create(records, batch_size=1000)
        ids = []
        for index, record in enumerate(records):
            source_id, source_ref, target_id, target_ref = self.ids(integration, record_type, index)
            ids.append((record, integration.source, source_id, source_ref))
            if self.random.random() >= UNLINKED_SHARE:
                ids.append((record, integration.target, target_id, target_ref))
        self.sync_ids(tenant, record_type, ids)
        return count

    @staticmethod
    def sync_ids(tenant, record_type, ids, *, new: bool = True, description: str = ""):
        """Give records their remote ids as a sync would: one change set for the engine.

        `new`: the records were just made and carry their own demo modification times."""
        changes.apply(
            changes.ChangeSet(
                tenant=tenant,
                record_type=record_type,
                actor=SYNC_ACTOR,
                kind=Batch.Kind.SYNC,
                changes=[
                    changes.Change(
                        changes.Action.SET_ID,
                        line=number,
                        record_id=record.pk,
                        connection_id=connection.pk,
                        remote_id=remote_id,
                        remote_ref=remote_ref,
                    )
                    for number, (record, connection, remote_id, remote_ref) in enumerate(ids, 1)
                ],
                strict=True,
                audit_action=AuditEntry.Action.REMOTE_ID_SET,
                audit_each=not new,
                description=description or f"Synced {{written}} {record_type} ids",
                new_record_ids=frozenset(record.pk for record, *_ in ids) if new else frozenset(),
            )
        )

    def ids(self, integration, record_type, index):
        """Realistic ids: long numeric ids on the shop side, document numbers in the ERP."""
        shop = integration.source.connector.code
        base = {"shopify": 5_001_000_000, "woocommerce": 10_000}[shop]
        prefix = {"shopify": "", "woocommerce": "wc-"}[shop]
        erp_offset = 0 if shop == "shopify" else 50_000
        if record_type == "order":
            return (
                f"{prefix}{base + 7 * index}",
                f"#{1001 + index}",
                f"{90001 + index + erp_offset}",
                f"Faktura {90001 + index + erp_offset}",
            )
        if record_type == "article":
            return (
                f"{prefix}{base * 10 + 13 * index}",
                f"SKU-{index:05d}",
                f"A-{index + erp_offset:05d}",
                f"Article {index:05d}",
            )
        if record_type == "customer":
            return (
                f"{prefix}{base + 3 * index + 1}",
                f"customer{index}@example.com",
                f"C{10001 + index + erp_offset}",
                f"Customer {index}",
            )
        return (
            f"{prefix}{base * 100 + 17 * index}",
            f"SKU-{index:05d}",
            f"WH1-{index + erp_offset:05d}",
            "Main warehouse",
        )

    def record_data(self, record_type, index):
        if record_type == "order":
            return {
                "orderNumber": 1001 + index,
                "currency": "SEK",
                "total": f"{199 + index % 900}.00",
            }
        if record_type == "article":
            return {"sku": f"SKU-{index:05d}", "name": f"Article {index:05d}", "vat": 25}
        if record_type == "customer":
            return {"email": f"customer{index}@example.com", "name": f"Customer {index}"}
        return {"sku": f"SKU-{index:05d}", "quantity": index % 120, "warehouse": "WH1"}

    def known_to_three(self, world, count: int = 5):
        """Orders sold through both shops and picked by the warehouse: one record each, known to
        Shopify, WooCommerce Outlet and the Warehouse API (three rows in its remoteIdMap)."""
        main, outlet = world["main"], world["outlet"]
        records = list(
            Record.objects.for_tenant(main.tenant)
            .filter(record_type="order", remote_ids__connection=main.target)
            .order_by("id")[:count]
        )
        ids = []
        for index, record in enumerate(records):
            ids.append((record, outlet.source, f"wc-3{index:05d}", f"WC-{5001 + index}"))
            ids.append((record, world["api"], f"WH-{10001 + index}", f"Pick {10001 + index}"))
        self.sync_ids(
            main.tenant,
            "order",
            ids,
            new=False,
            description="Synced {written} order ids from the outlet and the warehouse",
        )

    def recent_history(self, integration):
        """A few changes made through the services, so the history views have something."""
        anna, erik = Actor("user", "anna"), Actor("user", "erik")
        for index in range(5):
            add_reference(
                integration,
                "order",
                ReferenceInput(
                    source_id=f"{5_002_000_000 + index}",
                    source_ref=f"#{9001 + index}",
                    target_id=f"{99001 + index}",
                    target_ref=f"Faktura {99001 + index}",
                ),
                anna,
            )
        latest = RemoteId.objects.for_tenant(integration.tenant).get(
            connection=integration.source, remote_id="5002000004"
        )
        edit_reference(
            integration,
            latest.record,
            ReferenceInput(
                source_id="5002000004",
                source_ref="#9005",
                target_id="99105",
                target_ref="Faktura 99105",
            ),
            erik,
            version=latest.record.version,
        )

    def warehouse_orders(self, world):
        """Orders the Warehouse API created itself (B2B orders no shop knows), through the API's
        own service: their recordSource is that connection, with the code of the warehouse
        store each came from (the last one without a code)."""
        api = world["api"]
        for index, code in enumerate(["store-1", "store-2", "store-2", ""]):
            create_record_with_remote_id(
                api.tenant,
                "order",
                api,
                Actor.for_connection(api),
                remote_id=f"WH-B2B-{7001 + index}",
                remote_ref=f"B2B {7001 + index}",
                data={"orderNumber": 70001 + index, "channel": "b2b", "currency": "SEK"},
                source_code=code,
            )

    def suggestion_twins(self, integration, count: int = 8):
        """Orders the ERP already knows without a link: a Fortnox record carrying the same order
        number as an unlinked Shopify order. They show up on the Suggested links page."""
        tenant = integration.tenant
        unlinked = (
            RemoteId.objects.for_tenant(tenant)
            .filter(connection=integration.source, record_type="order")
            .exclude(
                Exists(
                    RemoteId.objects.for_tenant(tenant).filter(
                        record=OuterRef("record"), connection=integration.target
                    )
                )
            )
            .select_related("record")
            .order_by("id")[:count]
        )
        ids = []
        for index, source_row in enumerate(unlinked):
            twin = Record.objects.create(
                tenant=tenant,
                record_type="order",
                data={"orderNumber": source_row.record.data.get("orderNumber")},
                last_modified_by=str(SYNC_ACTOR),
                record_source=str(SYNC_ACTOR),
            )
            ids.append((twin, integration.target, f"{97001 + index}", source_row.remote_ref))
        self.sync_ids(tenant, "order", ids)

    def health_cases(self, world):
        """A few of each Health finding, so that a first look at the Health pages shows them:
        links lost to a delete and to a delete-all, a second Fortnox record of a linked
        article, and Fortnox ids reused after a (simulated) wipe."""
        main, outlet = world["main"], world["outlet"]
        tenant = main.tenant
        anna, erik = Actor("user", "anna"), Actor("user", "erik")

        def linked(integration, record_type, offset, count):
            return list(
                Record.objects.for_tenant(tenant)
                .filter(record_type=record_type, remote_ids__connection=integration.target)
                .filter(remote_ids__connection=integration.source)
                .order_by("id")[offset : offset + count]
            )

        # Lost to a delete: someone removed links by hand.
        for record in linked(main, "order", 100, 3):
            delete_reference(main, record, anna)
        # Lost to a delete-all: the outlet's customers.
        delete_all_references(outlet, "customer", erik)
        # Two Fortnox records for one linked article: a sync made a second one, same SKU.
        twins = []
        for index, record in enumerate(linked(main, "article", 10, 3)):
            twin = Record.objects.create(
                tenant=tenant,
                record_type="article",
                data={"sku": record.data.get("sku"), "name": "Copied article"},
                last_modified_by=str(SYNC_ACTOR),
                record_source=str(SYNC_ACTOR),
            )
            twins.append((twin, main.target, f"A-9{index:04d}", f"{record.data.get('sku')} copy"))
        self.sync_ids(tenant, "article", twins)
        # A Fortnox wipe: the ids of two linked orders go, and the sync hands them to two
        # other orders; a third keeps its id but its ref becomes an unrelated document.
        wiped = linked(main, "order", 200, 3)
        held = {
            row.record_id: row
            for row in RemoteId.objects.for_tenant(tenant).filter(
                connection=main.target, record__in=wiped
            )
        }
        self.sync_ids(
            tenant,
            "order",
            [(record, main.target, None, "") for record in wiped[:2]],
            new=False,
            description="Synced {written} order ids after the Fortnox reset",
        )
        unlinked = list(
            RemoteId.objects.for_tenant(tenant)
            .filter(connection=main.source, record_type="order")
            .exclude(
                Exists(
                    RemoteId.objects.for_tenant(tenant).filter(
                        record=OuterRef("record"), connection=main.target
                    )
                )
            )
            .exclude(record__in=wiped)
            .select_related("record")
            .order_by("-id")[:2]
        )
        reused = [
            (row.record, main.target, held[record.pk].remote_id, f"Faktura {5 + index}")
            for index, (row, record) in enumerate(zip(unlinked, wiped[:2], strict=False))
        ]
        reused.append((wiped[2], main.target, held[wiped[2].pk].remote_id, "Faktura 7"))
        self.sync_ids(
            tenant,
            "order",
            reused,
            new=False,
            description="Synced {written} order ids after the Fortnox reset",
        )
        self.refused_after_reset(main, exclude=[row.record_id for row in unlinked])

    def refused_after_reset(self, main, exclude, count: int = 20):
        """After the Fortnox reset its connector sends new invoices for unlinked orders with
        ids its counter hands out again, which older linked orders still hold: the API's own
        write (records.services.update_record) refuses each with a 409, and keeps the refusal.
        With the reused ids above, Health recognises the reset (references.findings.incident).
        """
        tenant, fortnox = main.tenant, main.target
        writers = list(
            Record.objects.for_tenant(tenant)
            .filter(record_type="order", remote_ids__connection=main.source)
            .exclude(
                Exists(
                    RemoteId.objects.for_tenant(tenant).filter(
                        record=OuterRef("pk"), connection=fortnox
                    )
                )
            )
            .exclude(pk__in=exclude)
            .order_by("id")[:count]
        )
        held = list(
            RemoteId.objects.for_tenant(tenant)
            .filter(connection=fortnox, record_type="order", remote_id__startswith="900")
            .order_by("id")
            .values_list("remote_id", flat=True)[: len(writers)]
        )
        actor = Actor.for_connection(fortnox)
        for writer, remote_id in zip(writers, held, strict=False):
            # Refused (409) and kept: what a reset looks like.
            with contextlib.suppress(Conflict):
                update_record(
                    writer, fortnox, actor, data=writer.data, remote_id=remote_id,
                    remote_ref=f"Faktura {remote_id}", custom_data={},
                )  # fmt: skip

    def custom_data(self, world):
        main = world["main"]
        records = list(
            Record.objects.for_tenant(main.tenant)
            .filter(record_type="order", remote_ids__connection=main.target)
            .order_by("id")[:40]
        )
        entries = []
        for index, record in enumerate(records):
            entries += [
                CustomData(
                    tenant=record.tenant,
                    record=record,
                    connection=main.target,
                    module_id="fortnox-invoices",
                    key="voucherSeries",
                    type="string",
                    value="B",
                ),
                CustomData(
                    tenant=record.tenant,
                    record=record,
                    connection=main.source,
                    module_id="shopify-orders",
                    key="fulfillmentAttempts",
                    type="integer",
                    value=index % 3,
                ),
                CustomData(
                    tenant=record.tenant,
                    record=record,
                    connection=None,
                    module_id="x-support",
                    key="checkedByFinance",
                    type="bool",
                    value=index % 2 == 0,
                ),
                CustomData(
                    tenant=record.tenant,
                    record=record,
                    connection=None,
                    module_id="x-support",
                    key="syncHints",
                    type="json",
                    value={"retry": index % 4 == 0, "notes": ["seeded"]},
                ),
            ]
        CustomData.objects.bulk_create(entries)

    def report(self, world, created):
        write = self.stdout.write
        if created:
            write(self.style.SUCCESS(f"Created {created} demo records."))
        else:
            write("Demo data already present; nothing added.")
        write("")
        write("Open http://127.0.0.1:8000/ and log in as:")
        write("  admin / admin        tenant admin of Acme AB")
        write("  support / support    support on Acme AB and Bergström Handel")
        write("  reseller / reseller  reseller staff: http://127.0.0.1:8000/admin/")
        api = world["api"]
        # Keys are stored only as a digest, so the demo key is rotated on every run to be shown.
        key = apikeys.rotate_key(api)
        write("")
        write(f"API connection '{api.name}' (a new key on every seed_demo run):")
        write(f"  connection_id {api.connection_id}")
        write(f"  API key       {key}")
        write(f"  curl -u {api.connection_id}:{key} 'http://127.0.0.1:8000/api/v1/order?limit=2'")
        write("  API docs: http://127.0.0.1:8000/api/v1/docs")

"""Loads N references into the benchmark database with COPY, in minutes.

The world: tenant `bench` with Shopify (source), Fortnox (target) and a Warehouse API
connection; integration "Shopify -> Fortnox" syncs all four entity types (N source records,
~5% of them unlinked) and "Shopify -> Warehouse API" syncs articles and stock (a third of those
records also have a Warehouse API row, so some records have three remote ids). A small second
tenant makes tenant scoping do real work.

Speed: one transaction that truncates the two big tables, drops their secondary indexes and
constraints, COPYs (FREEZE) the rows from Python generators, then recreates exactly the indexes
and constraints the migrations made (read from the catalog, so new migrations are picked up)
and VACUUM ANALYZEs. A marker table remembers N so the next run reuses the data.

On Citus (the citus:// backend, `make bench` with BENCH_PG at a coordinator) the same steps
run on the distributed tables through the coordinator, which passes them on to the shards;
COPY without FREEZE: Citus 13 accepts the option on a distributed table but does not pass
it on to the shards (it even takes it where no TRUNCATE came first, which PostgreSQL
refuses), so the rows are frozen by the VACUUM after.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from common.citus.tables import is_citus
from integrations.models import Connection, Connector, Integration, Membership, Reseller, Tenant
from records.counts import recount_all
from records.models import Record, RemoteId, RemoteIdFingerprint

TENANT_SLUG = "bench"
APP_USER = ("bench", "bench-password-1")  # tenant admin of `bench`
SUPERUSER = ("bench-super", "bench-password-2")  # the Django admin baseline
# Share of the N records per entity type; articles are the ~250k-row tab of delete-all.
TYPE_SHARES = {"article": 0.27, "customer": 0.23, "order": 0.35, "stock": 0.15}
UNLINKED_SHARE = 0.05
API_SHARE = 0.33  # of articles and stock, also known to the Warehouse API
OTHER_TENANT_RECORDS = 2_000
FIRST = ["anna", "erik", "maria", "johan", "karin", "lars", "eva", "nils", "sara", "olof"]
LAST = ["andersson", "berg", "lind", "nilsson", "holm", "ek", "strom", "dahl", "sjoberg", "falk"]
ITEMS = ["shirt", "mug", "lamp", "chair", "sock", "bottle", "scarf", "table", "poster", "bag"]
COLOURS = ["blue", "red", "black", "green", "white", "grey", "yellow", "oak", "navy", "pink"]
PEOPLE = ["user/anna", "user/erik", "system/sync", "system/sync", "system/sync"]
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BIG_TABLES = [Record._meta.db_table, RemoteId._meta.db_table]


def remote_ids(record_type: str, k: int) -> tuple[str, str, str, str, str]:
    """(source id, source ref, target id, target ref, api id) of the k-th record of a type."""
    first, last = FIRST[k % 10], LAST[(k // 10) % 10]
    if record_type == "order":
        return (
            str(5_001_000_000 + 7 * k),
            f"#{1001 + k}",
            str(90_001 + k),
            f"Faktura {90_001 + k}",
            "",
        )
    if record_type == "article":
        name = f"{COLOURS[k % 10]} {ITEMS[(k // 10) % 10]} {k}"
        return (
            str(7_800_000_000_000 + 13 * k),
            f"SKU-{k:06d}",
            f"A{k:06d}",
            name,
            f"WH-ART-{k:07d}",
        )
    if record_type == "customer":
        email = f"{first}.{last}{k}@example.com"
        return (
            str(6_200_000_000_000 + 11 * k),
            email,
            str(10_000 + k),
            f"{first.title()} {last.title()}",
            "",
        )
    return (
        str(44_000_000_000 + 17 * k),
        f"SKU-{k:06d}",
        f"LAGER-{k:06d}",
        "Huvudlager",
        f"WH-STK-{k:07d}",
    )


class World:
    """The bench tenant's objects, created idempotently."""

    def __init__(self):
        connectors = {}
        for code, name, category in (
            ("shopify", "Shopify", Connector.Category.ECOMMERCE),
            ("fortnox", "Fortnox", Connector.Category.ERP),
            ("api", "API connector", Connector.Category.API),
        ):
            connectors[code], _ = Connector.objects.get_or_create(
                code=code, defaults={"name": name, "category": category}
            )
        reseller, _ = Reseller.objects.get_or_create(name="Bench Reseller")
        self.tenant, _ = Tenant.objects.get_or_create(
            slug=TENANT_SLUG, defaults={"name": "Bench AB", "reseller": reseller}
        )
        self.other_tenant, _ = Tenant.objects.get_or_create(
            slug="bench-other", defaults={"name": "Other AB", "reseller": reseller}
        )

        def conn(tenant, code, name):
            obj, _ = Connection.objects.get_or_create(
                tenant=tenant, name=name, defaults={"connector": connectors[code]}
            )
            return obj

        self.shop = conn(self.tenant, "shopify", "Shopify")
        self.erp = conn(self.tenant, "fortnox", "Fortnox")
        self.api = conn(self.tenant, "api", "Warehouse API")
        self.other_shop = conn(self.other_tenant, "shopify", "Shopify")
        self.other_erp = conn(self.other_tenant, "fortnox", "Fortnox")

        def integ(tenant, source, target, types):
            obj, _ = Integration.objects.get_or_create(
                tenant=tenant,
                source=source,
                target=target,
                defaults={"name": f"{source.name} -> {target.name}", "entity_types": types},
            )
            return obj

        self.main = integ(self.tenant, self.shop, self.erp, list(TYPE_SHARES))
        self.warehouse = integ(self.tenant, self.shop, self.api, ["article", "stock"])
        self.other_main = integ(self.other_tenant, self.other_shop, self.other_erp, ["order"])
        User = get_user_model()
        self.user = _user(User, *APP_USER)
        self.superuser = _user(User, *SUPERUSER, superuser=True)
        Membership.objects.get_or_create(
            user=self.user, tenant=self.tenant, defaults={"role": Membership.Role.ADMIN}
        )


def _user(User, username, password, superuser=False):
    user, created = User.objects.get_or_create(username=username)
    if created or not user.check_password(password) or user.is_superuser != superuser:
        user.set_password(password)
        user.is_superuser = user.is_staff = superuser
        user.save()
    return user


def _ensure_marker() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_marker "
            "(n integer NOT NULL, loaded_at timestamptz NOT NULL, seconds real NOT NULL)"
        )
        cursor.execute("SELECT n FROM bench_marker ORDER BY loaded_at DESC LIMIT 1")
        row = cursor.fetchone()
    return row[0] if row else None


def forget_loaded() -> None:
    """Make the next `ensure_data` load afresh (a run that writes starts from the same data)."""
    _ensure_marker()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM bench_marker")


def ensure_data(n: int, log=print) -> World:
    """The bench world with exactly N references of the main integration (loaded if needed)."""
    world = World()
    if _ensure_marker() == n:
        log(f"data: reusing the {n:,} references already loaded")
        return world
    started = time.perf_counter()
    log(f"data: loading {n:,} references with COPY (a few minutes at 1M) ...")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        cursor.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        cursor.execute(f"TRUNCATE {', '.join(BIG_TABLES)} CASCADE")
        ddl = _drop_secondary_indexes(cursor)
        raw = cursor.cursor
        counts = _copy_rows(raw, world, n, log, freeze=not is_citus(connection))
        log(f"data: rows copied in {time.perf_counter() - started:.0f} s; rebuilding indexes")
        for statement in ddl:
            cursor.execute(statement)
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{Record._meta.db_table}', 'id'), "
            f"(SELECT max(id) FROM {Record._meta.db_table}))"
        )
        # Every remote id's fingerprint (records.models.RemoteIdFingerprint), as the engine
        # would have written it: first seen on its record, with its ref.
        fingerprints = RemoteIdFingerprint._meta.db_table
        cursor.execute(f"TRUNCATE {fingerprints}")
        cursor.execute(
            f"INSERT INTO {fingerprints} (tenant_id, connection_id, record_type, remote_id, "
            "record_id, local_id, remote_ref, first_seen, reused_by, acknowledged_by) "
            "SELECT r.tenant_id, r.connection_id, r.record_type, r.remote_id, r.record_id, "
            "rec.local_id, r.remote_ref, rec.created_at, '', '' "
            f"FROM {RemoteId._meta.db_table} r JOIN {Record._meta.db_table} rec "
            "ON rec.tenant_id = r.tenant_id AND rec.id = r.record_id"
        )
        cursor.execute("DELETE FROM bench_marker")
    with connection.cursor() as cursor:
        for table in [*BIG_TABLES, RemoteIdFingerprint._meta.db_table]:
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        seconds = time.perf_counter() - started
        cursor.execute(
            "INSERT INTO bench_marker (n, loaded_at, seconds) VALUES (%s, now(), %s)", [n, seconds]
        )
    log(f"data: {counts[0]:,} records, {counts[1]:,} remote ids loaded in {seconds:.0f} s")
    # Written past the change engine: its kept counts (records.counts) are counted afresh.
    started = time.perf_counter()
    recount_all()
    log(f"recount: {time.perf_counter() - started:.1f} s")
    return world


def _drop_secondary_indexes(cursor) -> list[str]:
    """Drop every index and constraint of the big tables but the primary keys; return the DDL
    that recreates them (constraints first, then plain indexes)."""
    constraints, indexes = [], []
    for table in BIG_TABLES:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype <> 'p' ORDER BY contype DESC, conname",
            [table],
        )
        for name, definition in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            constraints.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
            [table],
        )
        for name, definition in cursor.fetchall():
            cursor.execute(f"DROP INDEX {name}")
            indexes.append(definition)
    return constraints + indexes


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _copy_rows(raw, world: World, n: int, log, freeze: bool = True) -> tuple[int, int]:
    """COPY records and remote ids; ids are assigned here so remote ids can point at them."""
    options = " WITH (FREEZE)" if freeze else ""
    rng = random.Random(7)
    record_columns = (
        "id, tenant_id, local_id, record_type, data, created_at, last_modified, "
        "last_modified_by, record_source, version"
    )
    remote_columns = "tenant_id, record_id, connection_id, record_type, remote_id, remote_ref"
    created = _ts(NOW - timedelta(days=120))
    plan = []  # (tenant, record_type, count, connections)
    for record_type, share in TYPE_SHARES.items():
        plan.append((world.tenant, world.main, record_type, round(n * share)))
    plan.append((world.other_tenant, world.other_main, "order", OTHER_TENANT_RECORDS))
    records = remotes = 0
    next_id = 1
    span = 90 * 24 * 3600
    with raw.copy(f"COPY {Record._meta.db_table} ({record_columns}) FROM STDIN{options}") as copy:
        for tenant, _integration, record_type, count in plan:
            lines = []
            for k in range(count):
                moment = NOW - timedelta(seconds=rng.randrange(span), microseconds=k % 1000)
                data = _data(record_type, k)
                lines.append(
                    f"{next_id + k}\t{tenant.pk}\t{rng.getrandbits(128):032x}\t{record_type}\t"
                    f"{data}\t{created}\t{_ts(moment)}\t{PEOPLE[k % 5]}\tsystem/bench\t1\n"
                )
                if len(lines) >= 20_000:
                    copy.write("".join(lines))
                    lines = []
            copy.write("".join(lines))
            next_id += count
            records += count
    log(f"data: {records:,} records copied")
    next_id = 1
    with raw.copy(f"COPY {RemoteId._meta.db_table} ({remote_columns}) FROM STDIN{options}") as copy:
        for tenant, integration, record_type, count in plan:
            source, target = integration.source_id, integration.target_id
            api = world.api.pk if integration == world.main else None
            lines = []
            for k in range(count):
                record_id = next_id + k
                sid, sref, tid, tref, aid = remote_ids(record_type, k)
                head = f"{tenant.pk}\t{record_id}\t"
                lines.append(f"{head}{source}\t{record_type}\t{sid}\t{sref}\n")
                remotes += 1
                if rng.random() >= UNLINKED_SHARE:
                    lines.append(f"{head}{target}\t{record_type}\t{tid}\t{tref}\n")
                    remotes += 1
                if api and aid and rng.random() < API_SHARE:
                    lines.append(f"{head}{api}\t{record_type}\t{aid}\t\n")
                    remotes += 1
                if len(lines) >= 30_000:
                    copy.write("".join(lines))
                    lines = []
            copy.write("".join(lines))
            next_id += count
    return records, remotes


def _data(record_type: str, k: int) -> str:
    if record_type == "article":
        return f'{{"sku": "SKU-{k:06d}", "name": "{COLOURS[k % 10]} {ITEMS[(k // 10) % 10]}"}}'
    if record_type == "customer":
        return f'{{"email": "{FIRST[k % 10]}.{LAST[(k // 10) % 10]}{k}@example.com"}}'
    if record_type == "order":
        return f'{{"number": "#{1001 + k}", "total": "{(k % 997) * 10 + 99}.00"}}'
    return f'{{"sku": "SKU-{k:06d}", "quantity": {k % 250}}}'

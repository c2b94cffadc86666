"""Reference counts kept by the change engine: linked, unlinked and lost per integration and
entity type, exact and one indexed row away.

Counting a million references on every page view costs 100 ms or more (or an estimate); the
engine is the only writer of remote ids, so it keeps the counts instead, in the same
transaction as each change set, from what the change set wrote:
- a change set of some records counts the states of those records (linked, unlinked, lost)
  before writing and again after; the difference is added to the kept row with
  `SET linked = linked + %s`, a row-level increment, so concurrent change sets never lose
  each other's updates;
- a whole-tab change (delete all, the restore of a delete-all) derives the new counts from
  its own batch: delete-all of n references makes n linked ones unlinked and lost.

Counting is set-based and its plans cannot turn per-row: the records go as one array
parameter, "linked" is a probe of the unique (tenant, record, connection) index, and "lost"
reads the BatchChange rows of those records by the record index, then their batches by
primary key, in separate statements. (A correlated EXISTS over BatchChange joined to Batch
was planned inside a bulk job, with statistics that had not seen the job's own rows, as a
walk of the whole delete-all batch for every source row: 256k x 256k, 22 minutes.)

A missing row (a new integration, one whose connections or entity types changed) is counted
when first read or written. `manage.py recount` recounts everything and says what differed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Exists, F, FilteredRelation, OuterRef, Q

from common.sets import where_in
from integrations.models import EntityType, Integration

from .models import Batch, BatchChange, ReferenceCount, RemoteId, writing
from .queries import target_row

LINKED, UNLINKED, LOST = "linked", "unlinked", "lost"
STATES = (LINKED, UNLINKED, LOST)


def removed_target_rows(integration):
    """Target rows taken away by a change that was not undone: what lost a link. Every
    removal counts, those meant by a fix too (reconcile, unlinking a reused id): a record
    that had a link was not "never linked"; `references.findings.lost` says which kind of
    change it was, and why."""
    return BatchChange.objects.for_tenant(integration.tenant).filter(
        change=BatchChange.Change.REMOVED,
        connection=integration.target,
        batch__restored_at__isnull=True,
    )


def is_lost(integration):
    """A condition on source rows: their record had a target id that a change removed."""
    return Exists(removed_target_rows(integration).filter(record_id=OuterRef("record_id")))


def _has_target(integration):
    return Exists(target_row(integration))


@dataclass(frozen=True)
class Counts:
    linked: int = 0
    unlinked: int = 0
    lost: int = 0

    @property
    def never_linked(self) -> int:
        return self.unlinked - self.lost

    @property
    def total(self) -> int:
        return self.linked + self.unlinked

    def as_dict(self) -> dict[str, int]:
        return {LINKED: self.linked, UNLINKED: self.unlinked, LOST: self.lost}


def count_states(integration, record_type: str, record_ids=None) -> Counter:
    """Linked, unlinked and lost source rows of one tab (or of some of its records): what
    the References page shows, so the kept counts agree with its rows."""
    rows = (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(connection=integration.source, record_type=record_type)
        .order_by()
    )
    if record_ids is None:
        total = rows.count()
        unlinked = list(rows.exclude(_has_target(integration)).values_list("record_id", flat=True))
    else:
        total, unlinked = 0, []
        for part in where_in(rows, "record_id", record_ids):
            for record_id, linked in part.values_list("record_id", _has_target(integration)):
                total += 1
                if not linked:
                    unlinked.append(record_id)
    lost = len(lost_among(integration, unlinked))
    return Counter({LINKED: total - len(unlinked), UNLINKED: len(unlinked), LOST: lost})


def lost_among(integration, record_ids) -> set[int]:
    """Which of these records lost their target id to a change that stands (see `is_lost`):
    their removals by the record index, then those removals' batches by primary key."""
    removals = BatchChange.objects.for_tenant(integration.tenant).filter(
        connection=integration.target, change=BatchChange.Change.REMOVED
    )
    removed_by: set[tuple[int, int]] = set()
    for part in where_in(removals.order_by(), "record", record_ids):
        removed_by.update(part.values_list("record_id", "batch_id").distinct())
    standing_batches = (
        Batch.objects.for_tenant(integration.tenant).filter(restored_at__isnull=True).order_by()
    )
    standing: set[int] = set()
    for part in where_in(standing_batches, "id", {batch for _, batch in removed_by}):
        standing.update(part.values_list("pk", flat=True))
    return {record_id for record_id, batch in removed_by if batch in standing}


# --- reading ---------------------------------------------------------------------------------


def kept_counts(integration) -> dict[str, Counts]:
    """The counts of every entity type the integration syncs, by record type: one query
    (plus a recount of any tab not counted yet)."""
    types = integration.synced_entity_types
    kept = {
        row.record_type: Counts(row.linked, row.unlinked, row.lost)
        for row in ReferenceCount.objects.for_tenant(integration.tenant).filter(
            integration=integration, record_type__in=types
        )
    }
    for record_type in types:
        if record_type not in kept:
            kept[record_type] = recount(integration, record_type)
    return kept


def with_kept_counts(integrations):
    """Integrations with their kept counts joined in (one LEFT JOIN per entity type on the
    unique (integration, record_type) index): the page that loads its integration gets its
    counts in the same query. Read them with `preloaded_counts`. The joins also match the
    tenant: on Citus a join on integration_id alone visits every shard of the counts."""
    relations = {
        _preloaded(record_type): FilteredRelation(
            "referencecount",
            condition=Q(
                referencecount__record_type=record_type,
                referencecount__tenant_id=F("tenant_id"),
            ),
        )
        for record_type in EntityType.values
    }
    return integrations.annotate(**relations).select_related(*relations)


def preloaded_counts(integration) -> dict[str, Counts] | None:
    """The counts `with_kept_counts` loaded, or None if a synced tab has no row yet (then
    `kept_counts` counts it). As read when the integration was loaded: a view that has
    changed references since must call `kept_counts` instead."""
    kept = {}
    for record_type in integration.synced_entity_types:
        row = getattr(integration, _preloaded(record_type), None)
        if row is None:
            return None
        kept[record_type] = Counts(row.linked, row.unlinked, row.lost)
    return kept


def _preloaded(record_type: str) -> str:
    return f"kept_count_{record_type}"


def counts_of(integration, record_type: str) -> Counts:
    return kept_counts(integration)[record_type]


# --- writing ---------------------------------------------------------------------------------


def recount(integration, record_type: str) -> Counts:
    """Count one tab from scratch and keep the result (row locked first, so no change set's
    increment can fall between the count and the write)."""
    with transaction.atomic(), writing():
        _ensure_row(integration, record_type)
        _lock(integration, record_type)
        counted = count_states(integration, record_type)
        ReferenceCount.objects.for_tenant(integration.tenant).filter(
            integration=integration, record_type=record_type
        ).update(**counted)
    return Counts(counted[LINKED], counted[UNLINKED], counted[LOST])


def recount_all(tenant=None) -> list[tuple[Integration, str, Counts, Counts]]:
    """Recount every tab (of one tenant, or all); returns those whose kept counts differed,
    as (integration, record type, kept before, counted)."""
    integrations = Integration.objects.select_related("tenant", "source", "target")
    if tenant is not None:
        integrations = integrations.filter(tenant=tenant)
    differed = []
    for integration in integrations:
        before = {
            row.record_type: Counts(row.linked, row.unlinked, row.lost)
            for row in ReferenceCount.objects.for_tenant(integration.tenant).filter(
                integration=integration
            )
        }
        for record_type in integration.synced_entity_types:
            counted = recount(integration, record_type)
            if before.get(record_type) != counted:
                differed.append((integration, record_type, before.get(record_type), counted))
    return differed


def forget(integration) -> None:
    """Drop an integration's kept counts (its connections or entity types changed): they
    are counted again when next read."""
    with writing():
        ReferenceCount.objects.for_tenant(integration.tenant).filter(
            integration=integration
        ).delete()


def _ensure_row(integration, record_type: str) -> None:
    ReferenceCount.objects.bulk_create(
        [
            ReferenceCount(
                tenant_id=integration.tenant_id, integration=integration, record_type=record_type
            )
        ],
        ignore_conflicts=True,
    )


def _lock(integration, record_type: str) -> None:
    if db_connection.vendor == "postgresql":
        list(
            ReferenceCount.objects.for_tenant(integration.tenant_id)
            .filter(integration=integration, record_type=record_type)
            .select_for_update()
            .values_list("pk", flat=True)
        )


class Tracker:
    """Keeps the counts of one change set: `start()` before its writes, `finish()` after.

    `record_ids` are the records the change set touches (None: the whole tab, counted again
    after the writes). The counts of the integrations in `derived` come from the change set
    itself (`ChangeSetBase.derived_counts`, e.g. delete-all), given to `finish()`."""

    def __init__(self, tenant, record_type: str, integrations, record_ids=None, derived=()):
        self.tenant = tenant
        self.record_type = record_type
        self.integrations = [
            integration
            for integration in integrations
            if record_type in integration.synced_entity_types
        ]
        self.record_ids = None if record_ids is None else set(record_ids)
        self.derived = {integration.pk for integration in derived}
        self.before: dict[int, Counter] = {}
        self.uncounted: set[int] = set()

    @classmethod
    def for_connections(
        cls, tenant, record_type, connection_ids, record_ids=None, derived=()
    ) -> Tracker:
        """Every integration that syncs `record_type` through one of these connections."""
        connection_ids = list(connection_ids)
        integrations = (
            Integration.objects.for_tenant(tenant)
            .filter(Q(source_id__in=connection_ids) | Q(target_id__in=connection_ids))
            .select_related("source", "target")
            if connection_ids
            else []
        )
        return cls(tenant, record_type, list(integrations), record_ids, derived)

    @property
    def diffed(self) -> list:
        """The integrations whose counts are diffed over the touched records."""
        return [i for i in self.integrations if i.pk not in self.derived]

    def start(self) -> None:
        kept = set(
            ReferenceCount.objects.for_tenant(self.tenant)
            .filter(
                integration__in=[integration.pk for integration in self.integrations],
                record_type=self.record_type,
            )
            .values_list("integration_id", flat=True)
        )
        for integration in self.integrations:
            derived = integration.pk in self.derived
            if integration.pk not in kept or (self.record_ids is None and not derived):
                # A tab not counted yet (or a change of unknown extent): lock its row now
                # and count it from scratch after the writes.
                self.uncounted.add(integration.pk)
                _ensure_row(integration, self.record_type)
                _lock(integration, self.record_type)
            elif derived:
                # Locked now, so no increment lands between the change and its own delta.
                _lock(integration, self.record_type)
            else:
                self.before[integration.pk] = count_states(
                    integration, self.record_type, self.record_ids
                )

    def finish(self, written_record_ids=(), derived_counts=None) -> None:
        derived_counts = derived_counts or {}
        for integration in self.integrations:
            if integration.pk in self.uncounted:
                recount(integration, self.record_type)
                continue
            if integration.pk in self.derived:
                delta = derived_counts[integration.pk]
            else:
                after = count_states(
                    integration, self.record_type, self.record_ids | set(written_record_ids)
                )
                before = self.before[integration.pk]
                delta = {state: after[state] - before[state] for state in STATES}
            if any(delta.values()):
                _increment(integration, self.record_type, delta)


def _increment(integration, record_type: str, delta: dict[str, int]) -> None:
    table = db_connection.ops.quote_name(ReferenceCount._meta.db_table)
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET linked = linked + %s, unlinked = unlinked + %s, "  # noqa: S608
            "lost = lost + %s WHERE tenant_id = %s AND integration_id = %s AND record_type = %s",
            [
                delta[LINKED],
                delta[UNLINKED],
                delta[LOST],
                integration.tenant_id,
                integration.pk,
                record_type,
            ],
        )

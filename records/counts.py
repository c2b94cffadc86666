"""Reference counts kept by the change engine: linked, unlinked and lost per integration and
entity type, exact and one indexed row away.

Counting a million references on every page view costs 100 ms or more (or an estimate); the
engine is the only writer of remote ids, so it keeps the counts instead, in the same
transaction as each change set:
- before writing, it counts the states of the records the change set touches (linked,
  unlinked, lost: a few rows, one query per integration), and again after; the difference is
  added to the kept row with `SET linked = linked + %s`, a row-level increment, so concurrent
  change sets never lose each other's updates;
- a change set that touches a whole tab (delete all, restore of a big batch) recounts that
  tab instead, after locking its row, so no increment lands between its count and its write.

A missing row (a new integration, one whose connections or entity types changed) is counted
when first read or written. `manage.py recount` recounts everything and says what differed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, Exists, FilteredRelation, OuterRef, Q

from integrations.models import EntityType, Integration

from .models import Batch, BatchChange, ReferenceCount, RemoteId, writing

LINKED, UNLINKED, LOST = "linked", "unlinked", "lost"
STATES = (LINKED, UNLINKED, LOST)

# Above this many touched records a change set recounts its tab instead of diffing records.
DIFF_LIMIT = 20_000

# Removals that were the point of a fix (the id is gone remotely, or belongs to something
# else now): what they unlinked is not "lost", and putting it back would undo the fix.
DELIBERATE_REMOVALS = (Batch.Kind.RECONCILE, Batch.Kind.UNLINK_REUSED)


def removed_target_rows(integration):
    """Target rows taken away by a change that was not undone: what lost a link."""
    return (
        BatchChange.objects.for_tenant(integration.tenant)
        .filter(
            change=BatchChange.Change.REMOVED,
            connection=integration.target,
            batch__restored_at__isnull=True,
        )
        .exclude(batch__kind__in=DELIBERATE_REMOVALS)
    )


def is_lost(integration):
    """A condition on source rows: their record had a target id that a change removed."""
    return Exists(removed_target_rows(integration).filter(record_id=OuterRef("record_id")))


def _has_target(integration):
    return Exists(
        RemoteId.objects.for_tenant(integration.tenant).filter(
            connection=integration.target, record_id=OuterRef("record_id")
        )
    )


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
    """Linked, unlinked and lost source rows of one tab (or of some of its records): one
    query. What the References page shows, so the kept counts agree with its rows."""
    rows = RemoteId.objects.for_tenant(integration.tenant).filter(
        connection=integration.source, record_type=record_type
    )
    if record_ids is not None:
        rows = rows.filter(record_id__in=list(record_ids))
    linked = _has_target(integration)
    found = rows.order_by().aggregate(
        linked=Count("pk", filter=Q(linked)),
        unlinked=Count("pk", filter=~Q(linked)),
        lost=Count("pk", filter=~Q(linked) & Q(is_lost(integration))),
    )
    return Counter({state: found[state] or 0 for state in STATES})


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
    counts in the same query. Read them with `preloaded_counts`."""
    relations = {
        _preloaded(record_type): FilteredRelation(
            "referencecount", condition=Q(referencecount__record_type=record_type)
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


def counts_of_tenant(tenant) -> dict[tuple[int, str], Counts]:
    """Every integration's counts of a tenant, by (integration id, record type): one query."""
    return {
        (row.integration_id, row.record_type): Counts(row.linked, row.unlinked, row.lost)
        for row in ReferenceCount.objects.for_tenant(tenant)
    }


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
            ReferenceCount.objects.filter(integration=integration, record_type=record_type)
            .select_for_update()
            .values_list("pk", flat=True)
        )


class Tracker:
    """Keeps the counts of one change set: `start()` before its writes, `finish()` after.

    `record_ids` are the records the change set touches (None: the whole tab), `connection_ids`
    the connections whose ids it writes (None: the change set's integration's two)."""

    def __init__(self, tenant, record_type: str, integrations, record_ids=None):
        self.tenant = tenant
        self.record_type = record_type
        self.integrations = [
            integration
            for integration in integrations
            if record_type in integration.synced_entity_types
        ]
        self.record_ids = None if record_ids is None else set(record_ids)
        if self.record_ids is not None and len(self.record_ids) > DIFF_LIMIT:
            self.record_ids = None
        self.before: dict[int, Counter] = {}

    @classmethod
    def for_connections(cls, tenant, record_type, connection_ids, record_ids=None) -> Tracker:
        """Every integration that syncs `record_type` through one of these connections."""
        connection_ids = list(connection_ids)
        integrations = (
            Integration.objects.for_tenant(tenant)
            .filter(Q(source_id__in=connection_ids) | Q(target_id__in=connection_ids))
            .select_related("source", "target")
            if connection_ids
            else []
        )
        return cls(tenant, record_type, list(integrations), record_ids)

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
            if self.record_ids is None or integration.pk not in kept:
                # The whole tab, or a tab not counted yet: lock its row now and count it
                # from scratch after the writes.
                _ensure_row(integration, self.record_type)
                _lock(integration, self.record_type)
            else:
                self.before[integration.pk] = count_states(
                    integration, self.record_type, self.record_ids
                )

    def finish(self, written_record_ids=()) -> None:
        for integration in self.integrations:
            if integration.pk not in self.before:
                recount(integration, self.record_type)
                continue
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
            "lost = lost + %s WHERE integration_id = %s AND record_type = %s",
            [delta[LINKED], delta[UNLINKED], delta[LOST], integration.pk, record_type],
        )

"""Suggested links: an unlinked source record and a record only the target knows, same human ref.

Records that existed in both systems before the integration was set up are often in the
platform twice: once from the source (no target id: "unlinked") and once from the target
(no source id). When both carry the same human reference (the remote ref, or a data field such
as sku, email or orderNumber) and nothing else matches that value, we suggest merging them:
the target's remote id moves onto the source's record and the emptied duplicate is removed,
its custom data and history kept on the survivor. One restorable batch per accept.

"Only the target knows" means the record's one remote-id row is the target's: a record that a
third system also knows is never removed by this.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import CharField, Count, Exists, F, OuterRef, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from records.errors import DomainError, InvalidValue
from records.models import AuditEntry, Batch, BatchChange, CustomData, Record, RemoteId
from records.services import Actor

from .services import (
    _check_entity_type,
    reference_snapshot,
    snapshot_removed_record,
    unlinked_source_rows,
)

REMOTE_REF = "remote_ref"
DEFAULT_LIMIT = 100
# Data keys offered in the "match on" select are sampled from this many records.
SAMPLE_SIZE = 300


@dataclass(frozen=True)
class Suggestion:
    source: RemoteId  # the unlinked source row (its record survives)
    target: RemoteId  # the target row of the record only the target knows
    key: str

    @property
    def value(self) -> str:
        return f"{self.source.pk}:{self.target.pk}"


def match_fields(integration, record_type: str) -> list[tuple[str, str]]:
    """What a suggestion can match on: the remote ref, or a scalar data field of the records."""
    keys = set()
    records = (
        Record.objects.for_tenant(integration.tenant)
        .filter(record_type=record_type)
        .order_by("-id")
        .values_list("data", flat=True)[:SAMPLE_SIZE]
    )
    for data in records:
        if isinstance(data, dict):
            keys.update(
                key
                for key, value in data.items()
                if isinstance(value, str | int) and not isinstance(value, bool)
            )
    return [(REMOTE_REF, "Reference number (ref)")] + [
        (key, f"Data: {key}") for key in sorted(keys)
    ]


def clean_field(integration, record_type: str, field: str | None) -> str:
    field = field or REMOTE_REF
    if field not in dict(match_fields(integration, record_type)):
        raise InvalidValue(f"Cannot match on {field!r}.", field="field")
    return field


def _key(field: str):
    if field == REMOTE_REF:
        return F("remote_ref")
    return Cast(KeyTextTransform(field, "record__data"), output_field=CharField())


def _target_only_rows(integration, record_type: str):
    tenant = integration.tenant
    other_rows = (
        RemoteId.objects.for_tenant(tenant)
        .filter(record_id=OuterRef("record_id"))
        .exclude(connection=integration.target)
    )
    return (
        RemoteId.objects.for_tenant(tenant)
        .filter(connection=integration.target, record_type=record_type)
        .filter(~Exists(other_rows))
    )


def _keyed(queryset, field: str):
    return queryset.annotate(key=_key(field)).exclude(Q(key__isnull=True) | Q(key=""))


def _unique_keys(queryset):
    return queryset.order_by().values("key").annotate(n=Count("pk")).filter(n=1).values("key")


def _matches(integration, record_type: str, field: str):
    """Unlinked source rows whose key matches exactly one target-only record (and vice versa)."""
    sources = _keyed(unlinked_source_rows(integration, record_type), field)
    targets = _keyed(_target_only_rows(integration, record_type), field)
    matched = sources.filter(key__in=_unique_keys(sources)).filter(key__in=_unique_keys(targets))
    return matched, targets


def find_suggestions(
    integration, record_type: str, field: str = REMOTE_REF, *, limit: int = DEFAULT_LIMIT
) -> tuple[list[Suggestion], int]:
    """The first `limit` suggestions (ordered by the matched value) and how many there are."""
    _check_entity_type(integration, record_type)
    matched, targets = _matches(integration, record_type, field)
    total = matched.count()
    sources = list(matched.select_related("record").order_by("key", "pk")[:limit])
    by_key = {
        row.key: row
        for row in targets.filter(key__in=[row.key for row in sources]).select_related("record")
    }
    return [
        Suggestion(row, by_key[row.key], row.key) for row in sources if row.key in by_key
    ], total


def parse_pairs(values: list[str]) -> list[tuple[int, int]]:
    pairs = []
    for value in values:
        source, _, target = value.partition(":")
        if source.isdigit() and target.isdigit():
            pairs.append((int(source), int(target)))
    return pairs


def current_suggestions(integration, record_type: str, field: str, pairs) -> list[Suggestion]:
    """Of the pairs a person saw (source row pk, target row pk), those that still hold now."""
    wanted = dict(pairs)
    matched, targets = _matches(integration, record_type, field)
    sources = list(matched.filter(pk__in=list(wanted)).select_related("record"))
    by_pk = {
        row.pk: row for row in targets.filter(pk__in=list(wanted.values())).select_related("record")
    }
    found = []
    for source in sources:
        target = by_pk.get(wanted[source.pk])
        if target is not None and target.key == source.key:
            found.append(Suggestion(source, target, source.key))
    return found


@transaction.atomic
def accept_suggestions(
    integration, record_type: str, field: str, pairs: list[tuple[int, int]], actor: Actor
) -> Batch:
    """Merge each still-valid pair as one restorable batch. Pairs that no longer hold are left."""
    _check_entity_type(integration, record_type)
    tenant = integration.tenant
    suggestions = current_suggestions(integration, record_type, field, pairs)
    if not suggestions:
        raise DomainError(
            "These suggestions no longer apply (someone linked or changed the records). "
            "Nothing was changed.",
            code="stale",
        )
    now = timezone.now()
    batch = Batch.objects.create(
        tenant=tenant,
        kind=Batch.Kind.LINK_SUGGESTIONS,
        actor=str(actor),
        integration=integration,
        record_type=record_type,
        created_at=now,
        row_count=len(suggestions),
        description=f"Linked {len(suggestions)} suggested {record_type} "
        + ("reference" if len(suggestions) == 1 else "references"),
    )
    snapshots, added, audits = [], [], []
    for suggestion in suggestions:
        survivor, duplicate = suggestion.source.record, suggestion.target.record
        before = reference_snapshot(integration, survivor)
        snapshots.append(_merge(tenant, survivor, duplicate))
        row = RemoteId(
            tenant=tenant,
            record=survivor,
            connection=integration.target,
            record_type=record_type,
            remote_id=suggestion.target.remote_id,
            remote_ref=suggestion.target.remote_ref,
        )
        added.append(row)
        audits.append(
            AuditEntry(
                tenant=tenant,
                created_at=now,
                actor=str(actor),
                action=AuditEntry.Action.LINK,
                record=survivor,
                local_id=survivor.local_id,
                record_type=record_type,
                connection=integration.target,
                integration=integration,
                batch=batch,
                before=before,
                after={**before, "target_id": row.remote_id, "target_ref": row.remote_ref},
                summary=f"Linked {suggestion.source.remote_id} to {row.remote_id} "
                f"(same {'ref' if field == REMOTE_REF else field} {suggestion.key}); "
                f"merged duplicate {record_type} {duplicate.local_id}",
            )
        )
    RemoteId.objects.bulk_create(added)
    BatchChange.objects.bulk_create(
        BatchChange(
            tenant=tenant,
            batch=batch,
            change=BatchChange.Change.ADDED,
            record_id=row.record_id,
            connection_id=row.connection_id,
            record_type=row.record_type,
            remote_id=row.remote_id,
            remote_ref=row.remote_ref,
        )
        for row in added
    )
    AuditEntry.objects.bulk_create(audits)
    Record.objects.for_tenant(tenant).filter(pk__in=[row.record_id for row in added]).update(
        last_modified=now, last_modified_by=str(actor), version=F("version") + 1
    )
    batch.details = {"removed_records": snapshots, "field": field}
    batch.save(update_fields=["details"])
    return batch


def _merge(tenant, survivor: Record, duplicate: Record) -> dict:
    """Move what the duplicate holds onto the survivor, delete it; return its snapshot."""
    remote_ids = RemoteId.objects.for_tenant(tenant).filter(record=duplicate)
    rows = list(
        remote_ids.values("connection_id", "record_type", "remote_id", "remote_ref").order_by()
    )
    remote_ids.delete()
    taken = set(
        CustomData.objects.for_tenant(tenant)
        .filter(record=survivor)
        .values_list("connection_id", "module_id", "key")
    )
    custom = list(CustomData.objects.for_tenant(tenant).filter(record=duplicate))
    dropped = [item for item in custom if (item.connection_id, item.module_id, item.key) in taken]
    kept = [item.pk for item in custom if item not in dropped]
    CustomData.objects.filter(pk__in=[item.pk for item in dropped]).delete()
    CustomData.objects.filter(pk__in=kept).update(record=survivor)
    audit = AuditEntry.objects.for_tenant(tenant).filter(record=duplicate)
    audit_ids = list(audit.values_list("pk", flat=True))
    audit.update(record=survivor)
    batch_changes = list(
        BatchChange.objects.for_tenant(tenant)
        .filter(record=duplicate)
        .values("batch_id", "change", "connection_id", "record_type", "remote_id", "remote_ref")
    )
    snapshot = snapshot_removed_record(
        duplicate,
        survivor=survivor,
        moved={
            "remote_ids": rows,
            "custom_data_ids": kept,
            "dropped_custom_data": [
                {
                    "connection_id": item.connection_id,
                    "module_id": item.module_id,
                    "key": item.key,
                    "type": item.type,
                    "value": item.value,
                }
                for item in dropped
            ],
            "audit_entry_ids": audit_ids,
            "batch_changes": batch_changes,
        },
    )
    duplicate.delete()
    return snapshot

"""A merged duplicate: retired by a MERGE change, brought back by the restore of its batch.

What a restore needs is kept in the batch's details (`removed_records`), as the JSON of a
`RetiredDuplicate`. Snapshots written before a field existed lack its key and load with the
field's default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from django.utils.dateparse import parse_datetime

from records.models import AuditEntry, Batch, BatchChange, CustomData, Record, RemoteId


@dataclass
class RetiredDuplicate:
    """A deleted duplicate record: its fields, and where what it held went."""

    pk: int
    local_id: str
    record_type: str
    data: dict
    created_at: str
    last_modified: str
    last_modified_by: str
    record_source: str
    version: int
    survivor_id: int
    source_connection_id: int | None = None
    source_code: str = ""
    custom_data_ids: list[int] = field(default_factory=list)  # moved to the survivor
    dropped_custom_data: list[dict] = field(default_factory=list)  # the survivor had the key
    audit_entry_ids: list[int] = field(default_factory=list)  # moved to the survivor
    batch_changes: list[dict] = field(default_factory=list)  # its rows in other batches

    @classmethod
    def from_json(cls, snapshot: dict) -> RetiredDuplicate:
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in snapshot.items() if key in known})

    def to_json(self) -> dict:
        return asdict(self)

    def as_record(self, tenant) -> Record:
        return Record(
            pk=self.pk,
            tenant=tenant,
            local_id=self.local_id,
            record_type=self.record_type,
            data=self.data,
            created_at=parse_datetime(self.created_at),
            last_modified=parse_datetime(self.last_modified),
            last_modified_by=self.last_modified_by,
            record_source=self.record_source,
            source_connection_id=self.source_connection_id,
            source_code=self.source_code,
            version=self.version,
        )

    def removed_ids_of(self, batch: Batch) -> list[dict]:
        """Its remote-id rows that `batch` (the merge) removed."""
        return [
            row
            for row in self.batch_changes
            if row["batch_id"] == batch.pk and row["change"] == BatchChange.Change.REMOVED
        ]


def retire_duplicate(tenant, duplicate_id: int, *, survivor_id: int) -> RetiredDuplicate:
    """Move what a merged duplicate holds onto the survivor, delete it; return its snapshot.

    Its own remote-id rows were already removed (and recorded) by the MERGE's writes. The
    snapshot holds what restoring needs: its fields, the custom data and audit entries moved
    to the survivor, the custom data dropped because the survivor had the same key, and other
    batches' BatchChange rows of it (deleting the record cascades to them).
    """
    duplicate = Record.objects.for_tenant(tenant).get(pk=duplicate_id)
    custom_data = CustomData.objects.for_tenant(tenant)
    taken = set(
        custom_data.filter(record_id=survivor_id).values_list("connection_id", "module_id", "key")
    )
    custom = list(custom_data.filter(record=duplicate))
    dropped = [item for item in custom if (item.connection_id, item.module_id, item.key) in taken]
    kept = [item.pk for item in custom if item not in dropped]
    custom_data.filter(pk__in=[item.pk for item in dropped]).delete()
    custom_data.filter(pk__in=kept).update(record_id=survivor_id)
    audit = AuditEntry.objects.for_tenant(tenant).filter(record=duplicate)
    audit_ids = list(audit.values_list("pk", flat=True))
    audit.update(record_id=survivor_id)
    retired = RetiredDuplicate(
        pk=duplicate.pk,
        local_id=duplicate.local_id,
        record_type=duplicate.record_type,
        data=duplicate.data,
        created_at=duplicate.created_at.isoformat(),
        last_modified=duplicate.last_modified.isoformat(),
        last_modified_by=duplicate.last_modified_by,
        record_source=duplicate.record_source,
        source_connection_id=duplicate.source_connection_id,
        source_code=duplicate.source_code,
        version=duplicate.version,
        survivor_id=survivor_id,
        custom_data_ids=kept,
        dropped_custom_data=[
            {field: getattr(item, field) for field in DROPPED_FIELDS} for item in dropped
        ],
        audit_entry_ids=audit_ids,
        # Deleting the record cascades to its BatchChange rows (this batch's included).
        batch_changes=list(
            BatchChange.objects.for_tenant(tenant)
            .filter(record=duplicate)
            .values("batch_id", "change", "connection_id", "record_type", "remote_id", "remote_ref")
        ),
    )
    duplicate.delete()
    return retired


DROPPED_FIELDS = ("connection_id", "module_id", "key", "type", "value")


def put_back_records(tenant, retired: list[RetiredDuplicate]) -> None:
    """Bring merged duplicates back, with what they held, before their ids are put back."""
    if not retired:
        return
    Record.objects.bulk_create(duplicate.as_record(tenant) for duplicate in retired)
    CustomData.objects.bulk_create(
        CustomData(tenant=tenant, record_id=duplicate.pk, **item)
        for duplicate in retired
        for item in duplicate.dropped_custom_data
    )
    # Its rows in batches that still exist, the restored batch's own included: the restore
    # then puts back the remote ids they recorded as removed.
    live_batches = set(
        Batch.objects.for_tenant(tenant)
        .filter(pk__in={row["batch_id"] for item in retired for row in item.batch_changes})
        .values_list("pk", flat=True)
    )
    BatchChange.objects.bulk_create(
        BatchChange(tenant=tenant, record_id=duplicate.pk, **row)
        for duplicate in retired
        for row in duplicate.batch_changes
        if row["batch_id"] in live_batches
    )
    for duplicate in retired:
        CustomData.objects.for_tenant(tenant).filter(
            pk__in=duplicate.custom_data_ids, record_id=duplicate.survivor_id
        ).update(record_id=duplicate.pk)
        AuditEntry.objects.for_tenant(tenant).filter(pk__in=duplicate.audit_entry_ids).update(
            record_id=duplicate.pk
        )


def ids_in_use_again(tenant, batch: Batch, retired: list[RetiredDuplicate]) -> list[str]:
    """Ids a merged duplicate would get back that are taken again: its local id, or a remote
    id now held by a record other than the survivor it was merged into."""
    in_use = list(
        Record.objects.for_tenant(tenant)
        .filter(local_id__in=[duplicate.local_id for duplicate in retired])
        .values_list("local_id", flat=True)
    )
    for duplicate in retired:
        for row in duplicate.removed_ids_of(batch):
            holder = RemoteId.objects.for_tenant(tenant).filter(
                connection_id=row["connection_id"],
                record_type=row["record_type"],
                remote_id=row["remote_id"],
            )
            if holder.exclude(record_id=duplicate.survivor_id).exists():
                in_use.append(row["remote_id"])
    return in_use


def retired_in(batch: Batch) -> list[RetiredDuplicate]:
    return [RetiredDuplicate.from_json(item) for item in batch.details.get("removed_records") or []]

"""Refused writes: a connector's write the API refused because another record holds the id.

The API answers 409 and writes nothing; the refusal itself is kept (records.models.
RefusedWrite), because after a remote reset it is the first thing refdesk sees: the remote
system hands out ids again that refdesk still holds for older records. Kept after the refused
write's transaction has ended (the callers keep it outside their atomic block, so the
rollback of the refused change does not take it along); the happy path costs nothing.

Bounded: on each keep, the connection's refusals older than KEPT_DAYS go (one indexed range
delete, usually of nothing); the cap of KEPT_PER_CONNECTION rows is enforced by
`manage.py scan_health` (`prune`), which runs hourly, because counting a connection's rows on
every refused write would cost every write of a reset's burst a scan of up to 100k entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from .audit import Actor
from .errors import Conflict
from .models import Record, RefusedWrite
from .queries import record_names

KEPT_DAYS = 30
KEPT_PER_CONNECTION = 100_000


@dataclass(frozen=True)
class Refusal:
    """One refused write, as the caller knows it."""

    remote_id: str
    remote_ref: str
    holder: Record
    record: Record | None = None  # the record written onto (None: a create)


def refusal_of(error: Conflict, remote_id, remote_ref, record=None) -> Refusal | None:
    """The refusal an API write's Conflict is, if it is one: an id another record holds."""
    if error.holder is None or remote_id is None or error.field != "remote_id":
        return None
    return Refusal(str(remote_id).strip(), (remote_ref or "").strip(), error.holder, record)


def keep(tenant, connection, record_type: str, actor: Actor, refusals: list[Refusal]) -> None:
    """Keep `refusals` of `connection`'s writes (each holder named), and forget its old ones."""
    refusals = [refusal for refusal in refusals if refusal is not None]
    if not refusals:
        return
    now = timezone.now()
    with transaction.atomic():
        RefusedWrite.objects.bulk_create(
            RefusedWrite(
                tenant=tenant,
                connection=connection,
                record_type=record_type,
                remote_id=refusal.remote_id[:255],
                remote_ref=refusal.remote_ref[:255],
                record=refusal.record,
                holder=refusal.holder,
                actor=str(actor),
                refused_at=now,
            )
            for refusal in refusals
        )
        RefusedWrite.objects.for_tenant(tenant).filter(
            connection=connection,
            record_type=record_type,
            refused_at__lt=now - timedelta(days=KEPT_DAYS),
        ).delete()


def prune(tenant) -> int:
    """Keep at most KEPT_PER_CONNECTION refusals per connection and type (the newest), and
    none older than KEPT_DAYS; how many went."""
    rows = RefusedWrite.objects.for_tenant(tenant)
    removed, _ = rows.filter(refused_at__lt=timezone.now() - timedelta(days=KEPT_DAYS)).delete()
    groups = rows.values("connection_id", "record_type").annotate(n=Count("id"))
    for group in groups.filter(n__gt=KEPT_PER_CONNECTION):
        mine = rows.filter(connection_id=group["connection_id"], record_type=group["record_type"])
        oldest_kept = mine.order_by("-refused_at", "-id")[KEPT_PER_CONNECTION - 1]
        at = oldest_kept.refused_at
        gone, _ = mine.filter(
            Q(refused_at__lt=at) | Q(refused_at=at, id__lt=oldest_kept.pk)
        ).delete()
        removed += gone
    return removed


def of_record(record: Record):
    """The refusals a record page shows: of the id it holds, and of ids written onto it."""
    return (
        RefusedWrite.objects.for_tenant(record.tenant)
        .filter(Q(holder=record) | Q(record=record))
        .select_related("connection", "record", "holder")
        .defer("record__data", "holder__data")
        .order_by("-refused_at", "-id")
    )


@dataclass(frozen=True)
class RefusalSummary:
    """A connection's refusals of one type: how many ids, since when, until when."""

    connection_id: int
    record_type: str
    ids: int
    first: object
    last: object


def summaries(tenant, connection_ids=None, record_type: str | None = None) -> list:
    """Per connection and type, the distinct ids refused and when: one grouped query."""
    rows = RefusedWrite.objects.for_tenant(tenant)
    if connection_ids is not None:
        rows = rows.filter(connection_id__in=list(connection_ids))
    if record_type is not None:
        rows = rows.filter(record_type=record_type)
    grouped = (
        rows.values("connection_id", "record_type")
        .annotate(
            ids=Count("remote_id", distinct=True), first=Min("refused_at"), last=Max("refused_at")
        )  # fmt: skip
        .order_by("connection_id", "record_type")
    )
    return [
        RefusalSummary(g["connection_id"], g["record_type"], g["ids"], g["first"], g["last"])
        for g in grouped
    ]


# The record page lists at most this many (the newest); a reset's retries can repeat one id.
SHOWN_ON_RECORD = 20


@dataclass(frozen=True)
class Shown:
    """A refusal as the record page says it: which side of it this record was on."""

    refused: RefusedWrite
    holds: bool  # this record holds the id (else the connector wrote it onto this record)
    other: Record | None
    other_name: str


def shown_on(record: Record) -> list[Shown]:
    """The record's refused writes, newest first, each with the other record's name."""
    rows = list(of_record(record)[:SHOWN_ON_RECORD])
    others = [row.record if row.holder_id == record.pk else row.holder for row in rows]
    names = {}
    for connection_id in {row.connection_id for row in rows}:
        mine = {o.pk for row, o in zip(rows, others, strict=True)
                if o is not None and row.connection_id == connection_id}  # fmt: skip
        names |= record_names(record.tenant, mine, besides=connection_id)
    return [
        Shown(row, row.holder_id == record.pk, other, names.get(other.pk, "") if other else "")
        for row, other in zip(rows, others, strict=True)
    ]

"""The reconcile page's sample export: what a real export of one side looks like, with a few
lines of every reconcile class, to try the page on (the demo's first look at it)."""

from __future__ import annotations

from integrations.models import REMOTE_REF
from records.models import RemoteId

from . import reconcile
from .findings.keys import target_only_rows
from .models import ReconcileUpload
from .services import unlinked_source_rows

SAMPLE_LIMIT = 5000


def sample_export(integration, record_type: str, side: str) -> tuple[list[str], list[list]]:
    """The side's ids as its system would export them (every id its connection holds, up to
    SAMPLE_LIMIT), with a few lines of every reconcile class: (header, rows).

    From the ids of this integration's links: three left out (gone), two given the key of an
    unlinked record (reused), one renamed (ref changed), one twice; two ids another
    integration links and one only the connection knows are left out; new ids carry the keys
    of three unlinked records (matched) and of none (unknown)."""
    here = reconcile.side_connection(integration, side)
    there = reconcile.other_connection(integration, side)
    field = integration.match_key(record_type)
    tenant = integration.tenant
    held = list(
        RemoteId.objects.for_tenant(tenant)
        .filter(connection=here, record_type=record_type)
        .select_related("record")
        .order_by("pk")[:SAMPLE_LIMIT]
    )
    linked_here = set(
        RemoteId.objects.for_tenant(tenant)
        .filter(connection=there, record_id__in=[row.record_id for row in held])
        .values_list("record_id", flat=True)
    )
    shared = set()
    for _, partner in reconcile.sharing_integrations(integration, here, record_type):
        if partner.pk != there.pk:
            shared |= set(
                RemoteId.objects.for_tenant(tenant)
                .filter(connection=partner, record_id__in=[row.record_id for row in held])
                .values_list("record_id", flat=True)
            )
    ours = [row for row in held if row.record_id in linked_here and row.record_id not in shared]
    middle = len(ours) // 2
    left_out = {row.pk for row in ours[middle : middle + 3]}
    left_out |= {row.pk for row in [row for row in held if row.record_id in shared][:2]}
    only_here = [row for row in held if row.record_id not in linked_here | shared]
    left_out |= {row.pk for row in only_here[:1]}
    if side == ReconcileUpload.Side.TARGET:
        unlinked = unlinked_source_rows(integration, record_type)
    else:
        unlinked = target_only_rows(integration, record_type)
    keys = [
        key
        for key in (
            sample_key(row, field) for row in unlinked.select_related("record").order_by("pk")[:50]
        )
        if key
    ]
    reused = {row.pk: key for row, key in zip(ours[1:3], keys[:2], strict=False)}
    renamed = {row.pk for row in ours[3:4]}
    twice = {row.pk for row in ours[4:5]}
    lines = []
    for row in held:
        if row.pk in left_out:
            continue
        ref, key = row.remote_ref, sample_key(row, field, here_row=True)
        if row.pk in reused:  # the id now names another document: another ref and key
            ref = reused[row.pk] if field == REMOTE_REF else f"{ref} (new document)".strip()
            key = reused[row.pk]
        elif row.pk in renamed:
            ref = f"{ref} (renamed)"
        lines += [[row.remote_id, ref, key]] * (2 if row.pk in twice else 1)
    numbers = [int(row.remote_id) for row in held if row.remote_id.isdigit()]
    top = max(numbers) if numbers and len(numbers) == len(held) else None

    def new_id(n):
        return str(top + n) if top is not None else f"NEW-{n}"

    for n, key in enumerate(keys[2:5], 1):
        lines.append([new_id(n), "", key])  # matched: new there, same key
    lines.append([new_id(9), "", ""])  # unknown
    header = ["Id", "Reference"] + ([] if field == REMOTE_REF else [field[:1].upper() + field[1:]])
    return header, [line[: len(header)] for line in lines]


def sample_key(row, field: str, *, here_row: bool = False) -> str:
    """A record's match key as an export shows it: its data field, or (for the ref as key)
    the other side's ref, which the file's side does not hold."""
    if field == REMOTE_REF:
        return "" if here_row else row.remote_ref
    value = row.record.data.get(field)
    return "" if value in (None, "") else str(value)

"""Integration health: why records get duplicated, found in the references and their history.

Four findings per integration and entity type, each a queryset the health pages page through
and export, and a fix that is a change set of records.changes (previewed, applied as one
restorable batch):

- lost links: unlinked source records that had a target id before, and who or what removed it
  (a batch that removed the target row and was not restored); fixed by putting the old target
  id back where it is still free;
- duplicates already made: a record only the target knows whose key (the integration's match
  key: the remote ref or a data field) equals that of an unlinked source record ("probable
  duplicates"), or of a linked record ("two target records for one source"); fixed by merging
  the duplicate into the source's record;
- reused remote ids: ids whose fingerprint (records.models.RemoteIdFingerprint) says a sync
  put them on another record, or changed their ref, after a remote wipe; fixed by unlinking
  (the next sync re-creates the record) or acknowledged;
- reconciliation with a remote export: references.reconcile.

And the forecast: what the next sync creates, and how many of those the target probably has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from common.counting import Count as DisplayCount
from common.counting import capped_count
from common.entities import EntityType
from integrations.models import REMOTE_REF
from records import changes, counts, jobs
from records.audit import Actor, write_audit
from records.counts import is_lost, removed_target_rows
from records.models import AuditEntry, Batch, Job, Record, RemoteId, RemoteIdFingerprint

from .models import HealthScan, HealthScanRow
from .services import check_entity_type, reference_change_set, unlinked_source_rows

LOST = "lost"
DUPLICATES = "duplicates"
TWINS = "twins"
REUSED = "reused"
FINDINGS = {
    LOST: "Lost links",
    DUPLICATES: "Probable duplicates",
    TWINS: "Two target records",
    REUSED: "Reused ids",
}


def _chunks(items: list, size: int = changes.CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- lost links -------------------------------------------------------------------------------


def lost_rows(integration, record_type: str):
    return unlinked_source_rows(integration, record_type).filter(is_lost(integration))


def never_linked_rows(integration, record_type: str):
    return unlinked_source_rows(integration, record_type).exclude(is_lost(integration))


@dataclass(frozen=True)
class Loss:
    """How one record lost its link: the target id it had and the batch that removed it."""

    target_id: str
    target_ref: str
    batch_id: int
    at: datetime
    actor: str
    how: str  # "delete all", "import"...
    free: bool  # the target id is not held by another record now

    @property
    def how_label(self) -> str:
        return self.how


def losses(integration, record_type: str, record_ids) -> dict[int, Loss]:
    """For each of these (unlinked) records, the most recent removal of its target id, and
    whether that id is still free: one query per thousand records."""
    held_by_another = Exists(
        RemoteId.objects.for_tenant(integration.tenant).filter(
            connection=integration.target, record_type=record_type, remote_id=OuterRef("remote_id")
        )
    )
    latest = {}
    for chunk in _chunks(list(record_ids)):
        removed = (
            removed_target_rows(integration)
            .filter(record_id__in=chunk)
            .annotate(taken=held_by_another)
            .order_by("record_id", "-batch_id")
            .values_list(
                "record_id", "remote_id", "remote_ref", "batch_id",
                "batch__created_at", "batch__actor", "batch__kind", "taken",
            )
        )  # fmt: skip
        for record_id, *values in removed:
            latest.setdefault(record_id, values)
    return {
        record_id: Loss(
            target_id=remote_id,
            target_ref=remote_ref,
            batch_id=batch_id,
            at=at,
            actor=actor,
            how=Batch.Kind(kind).label.lower() if kind in Batch.Kind.values else kind,
            free=not taken,
        )
        for record_id, (remote_id, remote_ref, batch_id, at, actor, kind, taken) in latest.items()
    }


def relink_change_set(integration, record_type: str, rows, actor: Actor):
    """Put back the old link of each lost source row (rows: source RemoteIds of lost records).

    An old target id now held by another record is rejected by the engine, naming the holder.
    """
    found = losses(integration, record_type, [row.record_id for row in rows])
    change_list = [
        changes.Change(
            changes.Action.LINK,
            line=number,
            source_id=row.remote_id,
            target_id=found[row.record_id].target_id,
            target_ref=found[row.record_id].target_ref,
            note="put back the link lost by "
            f"{found[row.record_id].how} of {found[row.record_id].actor}",
        )
        for number, row in enumerate(rows, start=1)
        if row.record_id in found
    ]
    return reference_change_set(
        integration,
        record_type,
        actor,
        Batch.Kind.RELINK,
        change_list,
        ambiguous_advice="neither link is put back; link the right one on the References page.",
        audit_action=AuditEntry.Action.RELINK,
        description="Put back {written} lost "
        + (f"{record_type} link" if len(change_list) == 1 else f"{record_type} links"),
    )


# --- duplicates already made ------------------------------------------------------------------


def key_expression(field: str, *, record: str = "record__"):
    """The value that says two records are the same: a row's remote ref or a data field."""
    if field == REMOTE_REF:
        return F("remote_ref")
    return Cast(KeyTextTransform(field, f"{record}data"), output_field=CharField())


def key_label(field: str) -> str:
    return "ref" if field == REMOTE_REF else field


def _keyed(queryset, field: str):
    return queryset.annotate(key=key_expression(field)).exclude(Q(key__isnull=True) | Q(key=""))


def _unique_keys(queryset):
    return queryset.order_by().values("key").annotate(n=Count("pk")).filter(n=1).values("key")


def target_only_rows(integration, record_type: str):
    """Target rows of records no other connection knows: what a sync created in the target."""
    others = (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(record_id=OuterRef("record_id"))
        .exclude(connection=integration.target)
    )
    return (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(connection=integration.target, record_type=record_type)
        .filter(~Exists(others))
    )


def linked_target_keys(integration, record_type: str, field: str):
    return _keyed(changes.linked_target_rows(integration, record_type), field)


@dataclass
class Pair:
    """A record the source knows (unlinked, or linked to `linked`) and the target's duplicate."""

    source: RemoteId
    duplicate: RemoteId  # the target row of the record only the target knows
    key: str
    linked: RemoteId | None = None  # TWINS: the target row the source is linked to now


def duplicate_rows(integration, record_type: str):
    """Target-only rows whose key matches exactly one unlinked source record (and only it)."""
    field = integration.match_key(record_type)
    sources = _keyed(unlinked_source_rows(integration, record_type), field)
    targets = _keyed(target_only_rows(integration, record_type), field)
    return targets.filter(key__in=_unique_keys(targets)).filter(key__in=_unique_keys(sources))


def twin_rows(integration, record_type: str):
    """Target-only rows whose key is that of exactly one linked record: a second target record
    for a source that already has one."""
    field = integration.match_key(record_type)
    linked = linked_target_keys(integration, record_type, field)
    targets = _keyed(target_only_rows(integration, record_type), field)
    return targets.filter(key__in=_unique_keys(targets)).filter(key__in=_unique_keys(linked))


def pairs(integration, record_type: str, duplicates, *, twins: bool) -> list[Pair]:
    """The other half of each duplicate on a page: the source row with the same key."""
    field = integration.match_key(record_type)
    keys = [row.key for row in duplicates]
    tenant = integration.tenant
    if twins:
        linked = {
            row.key: row
            for row in linked_target_keys(integration, record_type, field)
            .filter(key__in=keys)
            .select_related("record")
        }
        sources = {
            row.record_id: row
            for row in RemoteId.objects.for_tenant(tenant)
            .filter(
                connection=integration.source,
                record_id__in=[row.record_id for row in linked.values()],
            )
            .select_related("record")
        }
        return [
            Pair(sources[linked[row.key].record_id], row, row.key, linked[row.key])
            for row in duplicates
            if row.key in linked and linked[row.key].record_id in sources
        ]
    sources = {
        row.key: row
        for row in _keyed(unlinked_source_rows(integration, record_type), field)
        .filter(key__in=keys)
        .select_related("record")
    }
    return [Pair(sources[row.key], row, row.key) for row in duplicates if row.key in sources]


def merge_change_set(integration, record_type: str, found: list[Pair], actor: Actor, *, keep=""):
    """Merge each duplicate into its source's record, as one restorable batch.

    Probable duplicates: the target's id moves onto the unlinked source record. Two target
    records: `keep="linked"` keeps the current link and retires the duplicate; `keep="other"`
    links the source to the duplicate's id instead (the old target id goes).
    """
    field = key_label(integration.match_key(record_type))
    change_list = []
    for number, pair in enumerate(found, start=1):
        kept = pair.linked if (pair.linked is not None and keep != "other") else pair.duplicate
        change_list.append(
            changes.Change(
                changes.Action.MERGE,
                line=number,
                record_id=pair.source.record_id,
                target_id=kept.remote_id,
                target_ref=kept.remote_ref,
                remote_id=pair.duplicate.remote_id,
                duplicate_id=pair.duplicate.record_id,
                note=f"same {field} {pair.key}; merged duplicate "
                f"{record_type} {pair.duplicate.record.local_id}",
            )
        )
    return reference_change_set(
        integration,
        record_type,
        actor,
        Batch.Kind.DUPLICATES,
        change_list,
        relink=keep == "other",
        audit_action=AuditEntry.Action.MERGE,
        description="Merged {written} duplicate "
        + (f"{record_type}" if len(change_list) == 1 else f"{record_type} records"),
        details={"field": integration.match_key(record_type)},
    )


# --- reused remote ids ------------------------------------------------------------------------


def reused_rows(integration, record_type: str):
    """Fingerprints marked reused whose id is still held (by the record it now belongs to)."""
    holders = RemoteId.objects.for_tenant(integration.tenant).filter(
        connection_id=OuterRef("connection_id"),
        record_type=OuterRef("record_type"),
        remote_id=OuterRef("remote_id"),
    )
    return (
        RemoteIdFingerprint.objects.for_tenant(integration.tenant)
        .filter(
            record_type=record_type,
            reused_at__isnull=False,
            connection__in=[integration.source_id, integration.target_id],
        )
        .annotate(
            holder_id=Subquery(holders.values("record_id")[:1]),
            holder_ref=Subquery(holders.values("remote_ref")[:1]),
        )
        .filter(holder_id__isnull=False)
        .select_related("connection")
    )


@dataclass(frozen=True)
class Reuse:
    fingerprint: RemoteIdFingerprint
    holder: Record | None  # where the id is now
    before: Record | None  # where it was first seen (None: that record is gone)
    holder_label: str = ""  # the records as people know them: "Shopify 5001001470 (#1211)"
    before_label: str = ""

    @property
    def moved(self) -> bool:
        return self.fingerprint.record_id != self.fingerprint.holder_id

    @property
    def ref_changed(self) -> bool:
        fingerprint = self.fingerprint
        return bool(fingerprint.remote_ref) and fingerprint.remote_ref != fingerprint.holder_ref


def reuses(integration, fingerprints) -> list[Reuse]:
    ids = {f.holder_id for f in fingerprints} | {f.record_id for f in fingerprints}
    records = Record.objects.for_tenant(integration.tenant).defer("data").in_bulk(ids)
    labels = record_labels(integration, ids)
    return [
        Reuse(
            f,
            records.get(f.holder_id),
            records.get(f.record_id),
            labels.get(f.holder_id, ""),
            labels.get(f.record_id, ""),
        )
        for f in fingerprints
    ]


def record_labels(integration, record_ids) -> dict[int, str]:
    """Records named by what people search for: the source's id and ref, else the target's."""
    labels = {}
    rows = (
        RemoteId.objects.for_tenant(integration.tenant)
        .filter(
            record_id__in=list(record_ids),
            connection__in=[integration.source_id, integration.target_id],
        )
        .order_by("record_id")
        .values_list("record_id", "connection_id", "remote_id", "remote_ref")
    )
    names = {
        integration.source_id: integration.source.name,
        integration.target_id: integration.target.name,
    }
    for record_id, connection_id, remote_id, remote_ref in rows:
        label = f"{names[connection_id]} {remote_id}" + (f" ({remote_ref})" if remote_ref else "")
        if connection_id == integration.source_id or record_id not in labels:
            labels[record_id] = label
    return labels


def unlink_reused_change_set(integration, record_type: str, fingerprints, actor: Actor):
    """Remove each reused id from the record it is on now: the next sync makes it anew."""
    change_list = [
        changes.Change(
            changes.Action.SET_ID,
            line=number,
            record_id=fingerprint.holder_id,
            connection_id=fingerprint.connection_id,
            remote_id=None,
            note=f"id reused after a remote wipe (first seen on {fingerprint.local_id})",
        )
        for number, fingerprint in enumerate(fingerprints, start=1)
    ]
    return reference_change_set(
        integration,
        record_type,
        actor,
        Batch.Kind.UNLINK_REUSED,
        change_list,
        audit_action=AuditEntry.Action.DELETE,
        description="Unlinked {written} reused "
        + (f"{record_type} id" if len(change_list) == 1 else f"{record_type} ids"),
    )


def forget_fingerprints(integration, fingerprints) -> None:
    """After an unlink: the id starts afresh the next time a sync writes it."""
    RemoteIdFingerprint.objects.for_tenant(integration.tenant).filter(
        pk__in=[fingerprint.pk for fingerprint in fingerprints]
    ).delete()


def acknowledge(integration, record_type: str, fingerprints, actor: Actor) -> int:
    """The reuse is fine: the id's fingerprint becomes what it is now, and it leaves the list."""
    now = timezone.now()
    tenant = integration.tenant
    holders = (
        Record.objects.for_tenant(tenant)
        .defer("data")
        .in_bulk({fingerprint.holder_id for fingerprint in fingerprints})
    )
    for fingerprint in fingerprints:
        holder = holders[fingerprint.holder_id]
        before = {"record": fingerprint.local_id, "remote_ref": fingerprint.remote_ref}
        RemoteIdFingerprint.objects.for_tenant(tenant).filter(pk=fingerprint.pk).update(
            record_id=holder.pk,
            local_id=holder.local_id,
            remote_ref=fingerprint.holder_ref,
            first_seen=now,
            reused_at=None,
            reused_by="",
            acknowledged_at=now,
            acknowledged_by=str(actor),
        )
        write_audit(
            tenant,
            actor,
            AuditEntry.Action.ACKNOWLEDGE,
            record=holder,
            connection=fingerprint.connection,
            integration=integration,
            before=before,
            after={"record": holder.local_id, "remote_ref": fingerprint.holder_ref},
            summary=f"Acknowledged that {fingerprint.connection.name} id "
            f"{fingerprint.remote_id} now belongs to this {record_type}",
            at=now,
        )
    return len(fingerprints)


# --- counts, forecast, overview ---------------------------------------------------------------


@dataclass
class EntityHealth:
    record_type: str
    unlinked: DisplayCount
    lost: DisplayCount
    duplicates: DisplayCount
    twins: DisplayCount
    reused: DisplayCount
    # Large integrations: duplicates and twins come from the latest scan (None: live).
    as_of: datetime | None = None
    scanned: bool = False

    @property
    def label(self) -> str:
        return EntityType(self.record_type).label

    @property
    def never_linked(self) -> int:
        return max(0, int(self.unlinked) - int(self.lost))

    @property
    def problems(self) -> int:
        return int(self.lost) + int(self.duplicates) + int(self.twins) + int(self.reused)


def entity_health(integration, record_type: str, kept: counts.Counts | None = None) -> EntityHealth:
    """What Health finds for one entity type; `kept` (its kept counts) when already read."""
    check_entity_type(integration, record_type)
    kept = kept or counts.counts_of(integration, record_type)
    health = EntityHealth(
        record_type=record_type,
        unlinked=DisplayCount(kept.unlinked),
        lost=DisplayCount(kept.lost),
        duplicates=DisplayCount(0),
        twins=DisplayCount(0),
        reused=capped_count(reused_rows(integration, record_type)),
    )
    if not is_large(integration, record_type):
        health.duplicates = capped_count(duplicate_rows(integration, record_type))
        health.twins = capped_count(twin_rows(integration, record_type))
        return health
    health.scanned = True
    scans = {scan.finding: scan for scan in latest_scans(integration, record_type)}
    for finding in SCANNED:
        scan = scans.get(finding)
        if scan is None:
            continue
        setattr(health, finding, DisplayCount(scanned_rows(integration, scan).count()))
        health.as_of = min(health.as_of or scan.computed_at, scan.computed_at)
    return health


# --- scans: duplicates and twins of large integrations, computed by a job ----------------------

SCANNED = (DUPLICATES, TWINS)


def live_limit() -> int:
    """Above this many target ids of a type, duplicates are scanned by a job, not per page."""
    return getattr(settings, "REFDESK_HEALTH_LIVE_ROWS", 50_000)


def is_large(integration, record_type: str) -> bool:
    limit = live_limit()
    targets = RemoteId.objects.for_tenant(integration.tenant).filter(
        connection=integration.target, record_type=record_type
    )
    count = capped_count(targets, cap=limit)
    return not count.exact or count.value > limit


def latest_scans(integration, record_type: str):
    return HealthScan.objects.for_tenant(integration.tenant).filter(
        integration=integration, record_type=record_type
    )


def scanned_rows(integration, scan):
    """The duplicates a scan found that are still there (a fixed one is gone)."""
    return RemoteId.objects.for_tenant(integration.tenant).filter(
        pk__in=scan.rows.values("remote_id_pk")
    )


def scan(integration, record_type: str, progress=None) -> list[HealthScan]:
    """Compute the duplicates and twins of one entity type and keep them (a job runs this)."""
    done = []
    for finding in SCANNED:
        rows = list(
            (duplicate_rows if finding == DUPLICATES else twin_rows)(integration, record_type)
        )
        found = pairs(integration, record_type, rows, twins=finding == TWINS)
        with transaction.atomic():
            kept, _ = HealthScan.objects.update_or_create(
                tenant=integration.tenant,
                integration=integration,
                record_type=record_type,
                finding=finding,
                defaults={"computed_at": timezone.now(), "count": len(found)},
            )
            kept.rows.all().delete()
            HealthScanRow.objects.bulk_create(
                (
                    HealthScanRow(
                        tenant=integration.tenant,
                        scan=kept,
                        remote_id_pk=pair.duplicate.pk,
                        source_pk=pair.source.pk,
                        linked_pk=pair.linked.pk if pair.linked else None,
                        key=str(pair.key)[:255],
                    )
                    for pair in found
                ),
                batch_size=changes.CHUNK,
            )
        done.append(kept)
        if progress:
            progress(f"Scanned {FINDINGS[finding].lower()}", len(done), len(SCANNED))
    return done


def scan_is_due(integration, record_type: str) -> bool:
    """A large type without a scan, or with one older than an hour."""
    if not is_large(integration, record_type):
        return False
    scans = list(latest_scans(integration, record_type))
    oldest = min((s.computed_at for s in scans), default=None)
    return len(scans) < len(SCANNED) or oldest < timezone.now() - SCAN_MAX_AGE


SCAN_MAX_AGE = timedelta(hours=1)


def start_scan(integration, record_types: list[str], actor: Actor, *, force: bool = False):
    """A job that scans the given types for duplicates; the running one if there is one.

    Without `force`, only the types whose scan is due. None when there is nothing to do.
    """
    running = (
        Job.objects.for_tenant(integration.tenant)
        .filter(kind="health_scan", integration=integration, state__in=jobs.ACTIVE)
        .first()
    )
    if running is not None:
        return running
    due = [t for t in record_types if force or scan_is_due(integration, t)]
    if not due:
        return None
    labels = ", ".join(plural(t, 2) for t in due)
    return jobs.start_job(
        "health_scan",
        tenant=integration.tenant,
        actor=actor,
        integration=integration,
        record_type=due[0] if len(due) == 1 else "",
        params={"record_types": due},
        total=len(due) * len(SCANNED),
        description=f"Look for duplicates of {labels} in {integration.target.name}",
    )


def pairs_from_scan(integration, record_type: str, finding: str, rows) -> list[Pair]:
    """The pairs of a page of scanned duplicates, from what the scan stored (no key search)."""
    stored = {
        row.remote_id_pk: row
        for row in HealthScanRow.objects.for_tenant(integration.tenant).filter(
            scan__in=latest_scans(integration, record_type).filter(finding=finding),
            remote_id_pk__in=[row.pk for row in rows],
        )
    }
    others = (
        RemoteId.objects.for_tenant(integration.tenant)
        .select_related("record")
        .in_bulk(
            {row.source_pk for row in stored.values()}
            | {row.linked_pk for row in stored.values() if row.linked_pk}
        )
    )
    result = []
    for row in rows:
        kept = stored.get(row.pk)
        if kept is None or kept.source_pk not in others:
            continue
        linked = others.get(kept.linked_pk) if kept.linked_pk else None
        if finding == TWINS and linked is None:
            continue
        result.append(Pair(others[kept.source_pk], row, kept.key, linked))
    return result


def overview(integration) -> list[EntityHealth]:
    kept = counts.kept_counts(integration)
    return [entity_health(integration, t, kept[t]) for t in integration.synced_entity_types]


def plural(record_type: str, n: int) -> str:
    if record_type == EntityType.STOCK:
        return "stock records" if n != 1 else "stock record"
    return f"{record_type}s" if n != 1 else record_type


def forecast(integration, health: EntityHealth) -> str:
    """One sentence: what the next sync creates in the target, and how many it probably has."""
    n, m = int(health.unlinked), int(health.duplicates)
    about = "" if health.unlinked.exact else "about "
    target = integration.target.name
    if not n:
        return f"The next sync will create no new {plural(health.record_type, 2)} in {target}."
    sentence = (
        f"The next sync will create {about}{n:,} new {plural(health.record_type, n)} in {target}"
    )
    if m:
        sentence += f"; {m:,} of them probably exist there already"
    return sentence + "."


def creates_after(integration, record_type: str, n: int) -> str:
    """The forecast for what a delete-all or import would leave: "the next sync creates N"."""
    return f"the next sync creates {n:,} {plural(record_type, n)} in {integration.target.name}"


# --- the findings' lists and fixes, as the health pages use them --------------------------------


def finding_rows(integration, record_type: str, finding: str):
    """The rows of one finding, newest first (a stable order that keyset paging can seek)."""
    if finding == LOST:
        rows = lost_rows(integration, record_type).select_related("record")
    elif finding in SCANNED and is_large(integration, record_type):
        found = latest_scans(integration, record_type).filter(finding=finding).first()
        rows = (
            scanned_rows(integration, found)
            .annotate(key=key_expression(integration.match_key(record_type)))
            .select_related("record")
            if found
            else RemoteId.objects.none()
        )
    elif finding == DUPLICATES:
        rows = duplicate_rows(integration, record_type).select_related("record")
    elif finding == TWINS:
        rows = twin_rows(integration, record_type).select_related("record")
    else:
        rows = reused_rows(integration, record_type)
    return rows.order_by("-pk")


def evidence(integration, record_type: str, finding: str, rows: list) -> list:
    """Each row with what explains it: the lost link, the pair, the before and after."""
    if finding == LOST:
        found = losses(integration, record_type, [row.record_id for row in rows])
        for row in rows:
            row.loss = found.get(row.record_id)
        return rows
    if finding in SCANNED and is_large(integration, record_type):
        return pairs_from_scan(integration, record_type, finding, rows)
    if finding in SCANNED:
        return pairs(integration, record_type, rows, twins=finding == TWINS)
    return reuses(integration, rows)


# Which fixes each finding offers: action -> (button label, what it does).
FIXES = {
    LOST: {"relink": "Put back the old link"},
    DUPLICATES: {"merge": "Link to the duplicate and merge"},
    TWINS: {"keep-linked": "Keep the linked record", "use-other": "Link the other instead"},
    REUSED: {"unlink": "Unlink", "acknowledge": "Acknowledge"},
}


def fix_change_set(integration, record_type: str, finding: str, action: str, rows, actor):
    """The change set of one fix of `rows` (rows of `finding_rows`)."""
    if finding == LOST:
        return relink_change_set(integration, record_type, rows, actor)
    if finding == REUSED:
        return unlink_reused_change_set(integration, record_type, rows, actor)
    found = evidence(integration, record_type, finding, rows)
    keep = {"keep-linked": "linked", "use-other": "other"}.get(action, "")
    return merge_change_set(integration, record_type, found, actor, keep=keep)


def apply_fix(integration, finding: str, change_set, rows, progress=None):
    applied = changes.apply(change_set, progress=progress)
    if finding == REUSED and applied.batch is not None:
        forget_fingerprints(integration, rows)
    return applied

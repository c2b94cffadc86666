"""Duplicates a sync already made: a record only the target knows whose key (the match key)
equals that of an unlinked source record ("probable duplicates"), or of a linked record ("two
target records for one source"); fixed by merging the duplicate into the source's record.

On a large integration (scans.is_large) a job finds them; the pages read its scan."""

from __future__ import annotations

from common.display_counts import Count, capped_count
from records import changes
from records.audit import Actor
from records.counts import Counts
from records.models import AuditEntry, Batch, RemoteId

from ..services import reference_change_set, unlinked_source_rows
from . import scans
from .base import Finding, Fix
from .keys import Pair, key_expression, key_label, keyed, linked_target_keys, target_only_rows
from .keys import unique_keys as _unique_keys


def duplicate_rows(integration, record_type: str):
    """Target-only rows whose key matches exactly one unlinked source record (and only it)."""
    field = integration.match_key(record_type)
    sources = keyed(unlinked_source_rows(integration, record_type), field)
    targets = keyed(target_only_rows(integration, record_type), field)
    return targets.filter(key__in=_unique_keys(targets)).filter(key__in=_unique_keys(sources))


def twin_rows(integration, record_type: str):
    """Target-only rows whose key is that of exactly one linked record: a second target record
    for a source that already has one."""
    field = integration.match_key(record_type)
    linked = linked_target_keys(integration, record_type, field)
    targets = keyed(target_only_rows(integration, record_type), field)
    return targets.filter(key__in=_unique_keys(targets)).filter(key__in=_unique_keys(linked))


def merge_change_set(integration, record_type: str, found: list[Pair], actor: Actor, *, keep=""):
    """Merge each duplicate into its source's record, as one restorable batch.

    Probable duplicates: the target's id moves onto the unlinked source record. Two target
    records: `keep="linked"` keeps the current link and retires the duplicate; `keep="other"`
    links the source to the duplicate's id instead (the old target id goes).
    """
    field = key_label(integration.match_key(record_type))
    change_list = [
        _merge(number, pair, record_type, field, keep) for number, pair in enumerate(found, start=1)
    ]
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


def _merge(number: int, pair: Pair, record_type: str, field: str, keep: str) -> changes.Change:
    kept = pair.linked if (pair.linked is not None and keep != "other") else pair.duplicate
    return changes.Change(
        changes.Action.MERGE,
        line=number,
        record_id=pair.source.record_id,
        target_id=kept.remote_id,
        target_ref=kept.remote_ref,
        remote_id=pair.duplicate.remote_id,
        duplicate_id=pair.duplicate.record_id,
        note=f"same {field} {pair.key}; merged duplicate {record_type} "
        + changes.named(pair.duplicate.remote_id, pair.duplicate.remote_ref),
    )


class ScannedDuplicates(Finding):
    """Target-only records that share their key with a source record: live on small
    integrations, from the latest scan on large ones."""

    scanned = True
    pairs_linked = False  # whether each pair has the target row its source is linked to

    def live_rows(self):
        raise NotImplementedError

    def sources_of(self, keys: list) -> dict:
        """The source row of each key, for the pairs of a page (live)."""
        raise NotImplementedError

    def rows(self):
        if not self.scope.large:
            return self.live_rows().select_related("record").order_by("-pk")
        kept = self.scope.scans.get(self.name)
        if kept is None:
            return RemoteId.objects.none()
        return (
            scans.scanned_rows(self.integration, kept)
            .annotate(key=key_expression(self.scope.match_key))
            .select_related("record")
            .order_by("-pk")
        )

    def count(self, kept: Counts) -> Count:
        if not self.scope.large:
            return capped_count(self.live_rows())
        scan = self.scope.scans.get(self.name)
        return Count(scans.scanned_rows(self.integration, scan).count() if scan else 0)

    def evidence(self, rows: list) -> list[Pair]:
        if self.scope.large:
            return scans.pairs_from_scan(self, rows)
        return self.pairs_found(rows)

    def pairs_found(self, duplicates=None) -> list[Pair]:
        """The other half of each duplicate (all of them when None): its source row."""
        duplicates = list(self.live_rows()) if duplicates is None else duplicates
        sources = self.sources_of([row.key for row in duplicates])
        return [self.pair(row, sources) for row in duplicates if row.key in sources]

    def pair(self, duplicate, sources: dict) -> Pair:
        return Pair(sources[duplicate.key], duplicate, duplicate.key)

    def change_set(self, fix: Fix, rows: list, actor: Actor):
        keep = {"keep-linked": "linked", "use-other": "other"}.get(fix.action, "")
        found = self.evidence(rows)
        return merge_change_set(self.integration, self.record_type, found, actor, keep=keep)


class ProbableDuplicates(ScannedDuplicates):
    name = "duplicates"
    label = "Probable duplicates"
    fixes = (Fix("merge", "Link to the duplicate and merge"),)
    template = "references/findings/duplicates.html"
    already_in_target = True

    def live_rows(self):
        return duplicate_rows(self.integration, self.record_type)

    def sources_of(self, keys: list) -> dict:
        rows = unlinked_source_rows(self.integration, self.record_type)
        return {
            row.key: row
            for row in keyed(rows, self.scope.match_key)
            .filter(key__in=keys)
            .select_related("record")
        }

    def csv_header(self) -> list[str]:
        source, target = self.integration.source.name, self.integration.target.name
        return [f"{source} id", f"{source} ref", "same key",
                f"duplicate {target} id", f"duplicate {target} ref"]  # fmt: skip

    def csv_values(self, item) -> list:
        return [item.source.remote_id, item.source.remote_ref, item.key,
                item.duplicate.remote_id, item.duplicate.remote_ref]  # fmt: skip


class TwoTargets(ScannedDuplicates):
    name = "twins"
    label = "Two target records"
    fixes = (
        Fix("keep-linked", "Keep the linked record"),
        Fix("use-other", "Link the other instead"),
    )
    template = "references/findings/twins.html"
    pairs_linked = True

    def live_rows(self):
        return twin_rows(self.integration, self.record_type)

    def sources_of(self, keys: list) -> dict:
        """Each key's linked target row, with the source row of its record beside it."""
        integration, field = self.integration, self.scope.match_key
        linked = {
            row.key: row
            for row in linked_target_keys(integration, self.record_type, field)
            .filter(key__in=keys)
            .select_related("record")
        }
        sources = {
            row.record_id: row
            for row in RemoteId.objects.for_tenant(integration.tenant)
            .filter(
                connection=integration.source, record_id__in=[r.record_id for r in linked.values()]
            )
            .select_related("record")
        }
        return {
            key: (sources[row.record_id], row)
            for key, row in linked.items()
            if row.record_id in sources
        }

    def pair(self, duplicate, sources: dict) -> Pair:
        source, linked = sources[duplicate.key]
        return Pair(source, duplicate, duplicate.key, linked)

    def csv_header(self) -> list[str]:
        source, target = self.integration.source.name, self.integration.target.name
        return [f"{source} id", f"linked {target} id", "same key",
                f"duplicate {target} id", f"duplicate {target} ref"]  # fmt: skip

    def csv_values(self, item) -> list:
        return [item.source.remote_id, item.linked.remote_id, item.key,
                item.duplicate.remote_id, item.duplicate.remote_ref]  # fmt: skip

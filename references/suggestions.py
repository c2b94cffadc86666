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

from django.db.models import CharField, Count, Exists, F, OuterRef, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from common.errors import DomainError, InvalidValue
from common.numbers import parse_number
from records import changes
from records.audit import Actor
from records.models import AuditEntry, Batch, Record, RemoteId

from .services import check_entity_type, reference_change_set, unlinked_source_rows

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
    check_entity_type(integration, record_type)
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
        source, target = parse_number(source), parse_number(target)
        if source is not None and target is not None:
            pairs.append((source, target))
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


def accept_change_set(integration, record_type: str, field: str, found, actor: Actor):
    """One MERGE per suggestion: the target's id moves onto the source's record and the
    emptied duplicate is retired (brought back by Undo)."""
    return reference_change_set(
        integration,
        record_type,
        actor,
        Batch.Kind.LINK_SUGGESTIONS,
        [
            changes.Change(
                changes.Action.MERGE,
                line=number,
                record_id=suggestion.source.record_id,
                target_id=suggestion.target.remote_id,
                target_ref=suggestion.target.remote_ref,
                duplicate_id=suggestion.target.record_id,
                note=f"same {'ref' if field == REMOTE_REF else field} {suggestion.key}; "
                f"merged duplicate {record_type} "
                + changes.named(suggestion.target.remote_id, suggestion.target.remote_ref),
            )
            for number, suggestion in enumerate(found, start=1)
        ],
        audit_action=AuditEntry.Action.LINK,
        description=f"Linked {{written}} suggested {record_type} "
        + ("reference" if len(found) == 1 else "references"),
        details={"field": field},
    )


def accept_suggestions(
    integration, record_type: str, field: str, pairs: list[tuple[int, int]], actor: Actor
) -> Batch:
    """Merge each still-valid pair as one restorable batch. Pairs that no longer hold are left."""
    check_entity_type(integration, record_type)
    found = current_suggestions(integration, record_type, field, pairs)
    applied = (
        changes.apply(accept_change_set(integration, record_type, field, found, actor))
        if found
        else None
    )
    if applied is None or applied.batch is None:
        raise DomainError(
            "These suggestions no longer apply (someone linked or changed the records). "
            "Nothing was changed.",
            code="stale",
        )
    return applied.batch

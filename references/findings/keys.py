"""What says two records are the same (the integration's match key: the remote ref or a data
field), and the rows duplicates are looked for among."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import CharField, Count, Exists, F, OuterRef, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from integrations.models import REMOTE_REF
from records import changes
from records.models import RemoteId


def key_expression(field: str, *, record: str = "record__"):
    """The value that says two records are the same: a row's remote ref or a data field."""
    if field == REMOTE_REF:
        return F("remote_ref")
    return Cast(KeyTextTransform(field, f"{record}data"), output_field=CharField())


def key_label(field: str) -> str:
    return "ref" if field == REMOTE_REF else field


def keyed(queryset, field: str):
    return queryset.annotate(key=key_expression(field)).exclude(Q(key__isnull=True) | Q(key=""))


def unique_keys(queryset):
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
    return keyed(changes.linked_target_rows(integration, record_type), field)


@dataclass
class Pair:
    """A record the source knows (unlinked, or linked to `linked`) and the target's duplicate."""

    source: RemoteId
    duplicate: RemoteId  # the target row of the record only the target knows
    key: str
    linked: RemoteId | None = None  # two target records: the target row the source is linked to

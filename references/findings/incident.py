"""The incident in one sentence: "Fortnox was probably reset around 14:02: 93 of its ids are
gone or reused".

After a remote reset the signals arrive together, per connection: its connector is refused
ids that records here still hold (records.refusals: it hands out old ids again), and ids it
wrote before land on other records or change their ref (reused fingerprints,
records.fingerprints). One signal alone is weak (a connector bug, one reused number); they
agree when both come from the same connection in the last INCIDENT_DAYS, or when one of them
counts ALONE_ENOUGH ids. The Health overview and the tenant home say it once, with one button
to the guided recovery: the Reconcile page of that connection's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, Min, OuterRef
from django.urls import reverse
from django.utils import timezone

from common.entities import EntityType, slug_of
from records.models import RefusedWrite, RemoteId, RemoteIdFingerprint

INCIDENT_DAYS = 7
# Distinct ids of one signal that say "reset" without the other.
ALONE_ENOUGH = 20
# Fewer ids than this, even with both signals, are a few odd documents, not a reset.
AT_LEAST = 3


@dataclass
class Incident:
    """A connection that was probably reset: when (the first signal), how many of its ids."""

    connection: object
    at: datetime
    ids: int
    record_type: str  # the entity type with the most of them: where the recovery starts
    integration: object  # an integration with this connection on one side
    refused: int = 0
    reused: int = 0
    tenant_slug: str = ""

    @property
    def entity_label(self) -> str:
        return (
            EntityType(self.record_type).label
            if self.record_type in EntityType.values
            else (self.record_type)
        )

    @property
    def side(self) -> str:
        return "target" if self.integration.target_id == self.connection.pk else "source"

    @property
    def sentence(self) -> str:
        at = timezone.localtime(self.at)
        today = timezone.localtime(timezone.now()).date()
        when = f"{at:%H:%M}" if at.date() == today else f"{at:%b} {at.day}, {at:%H:%M}"
        return (
            f"{self.connection.name} was probably reset around {when}: {self.ids:,} of its "
            f"ids are gone or reused."
        )

    @property
    def recovery_url(self) -> str:
        """The guided recovery starts at the Reconcile page of this connection's side."""
        url = reverse(
            "references:reconcile",
            kwargs={
                "tenant_slug": self.tenant_slug,
                "integration_id": self.integration.pk,
                "entity": slug_of(self.record_type),
            },
        )
        return f"{url}?side={self.side}"


def incidents(tenant, integrations) -> list[Incident]:
    """The connections of `integrations` that were probably reset, newest first: two grouped
    queries (refusals, reused fingerprints) and one that counts their ids together."""
    integrations = list(integrations)
    by_connection = {}
    for integration in integrations:
        for connection in (integration.source, integration.target):
            by_connection.setdefault(connection.pk, (connection, integration))
    if not by_connection:
        return []
    since = timezone.now() - timedelta(days=INCIDENT_DAYS)
    refused = _refused(tenant, by_connection, since)
    reused = _reused(tenant, by_connection, since)
    found = []
    for connection_id in sorted(set(refused) | set(reused)):
        connection, integration = by_connection[connection_id]
        incident = _agreed(connection, integration, refused.get(connection_id, {}),
                           reused.get(connection_id, {}))  # fmt: skip
        if incident is not None:
            found.append(incident)
    for incident in found:
        incident.ids = _distinct_ids(tenant, incident.connection.pk, since)
        incident.tenant_slug = tenant.slug
    found = [incident for incident in found if incident.ids >= AT_LEAST]
    return sorted(found, key=lambda incident: incident.at, reverse=True)


def _agreed(connection, integration, refused: dict, reused: dict) -> Incident | None:
    n_refused = sum(n for n, _ in refused.values())
    n_reused = sum(n for n, _ in reused.values())
    agree = (n_refused and n_reused) or max(n_refused, n_reused) >= ALONE_ENOUGH
    if not agree or n_refused + n_reused < AT_LEAST:
        return None
    per_type = {}
    for signal in (refused, reused):
        for record_type, (n, _) in signal.items():
            per_type[record_type] = per_type.get(record_type, 0) + n
    synced = set(integration.synced_entity_types)
    record_type = max(per_type, key=lambda t: (t in synced, per_type[t]))
    first = min(at for signal in (refused, reused) for _, at in signal.values())
    return Incident(connection, first, 0, record_type, integration, n_refused, n_reused)


def _refused(tenant, by_connection, since) -> dict[int, dict[str, tuple[int, datetime]]]:
    """Per connection and type: the ids its connector was refused that are still held, and
    since when."""
    rows = (
        _still_held(tenant)
        .filter(connection_id__in=list(by_connection), refused_at__gte=since)
        .values("connection_id", "record_type")
        .annotate(n=Count("remote_id", distinct=True), first=Min("refused_at"))
        .order_by()
    )
    return _grouped(rows)


def _reused(tenant, by_connection, since) -> dict[int, dict[str, tuple[int, datetime]]]:
    """Per connection and type: its ids a sync put on another record or gave another ref."""
    rows = (
        RemoteIdFingerprint.objects.for_tenant(tenant)
        .filter(connection_id__in=list(by_connection), reused_at__gte=since)
        .values("connection_id", "record_type")
        .annotate(n=Count("id"), first=Min("reused_at"))
        .order_by()
    )
    return _grouped(rows)


def _still_held(tenant):
    """Refusals whose id the holder still holds: not resolved yet."""
    held = RemoteId.objects.for_tenant(tenant).filter(
        connection_id=OuterRef("connection_id"),
        record_type=OuterRef("record_type"),
        remote_id=OuterRef("remote_id"),
        record_id=OuterRef("holder_id"),
    )
    return RefusedWrite.objects.for_tenant(tenant).filter(Exists(held))


def _grouped(rows) -> dict:
    grouped = {}
    for row in rows:
        grouped.setdefault(row["connection_id"], {})[row["record_type"]] = (row["n"], row["first"])
    return grouped


def _distinct_ids(tenant, connection_id: int, since) -> int:
    """The connection's ids that are gone or reused: refused or reused, each counted once."""
    refused = (
        _still_held(tenant)
        .filter(connection_id=connection_id, refused_at__gte=since)
        .values("record_type", "remote_id")
        .order_by()
    )
    reused = (
        RemoteIdFingerprint.objects.for_tenant(tenant)
        .filter(connection_id=connection_id, reused_at__gte=since)
        .values("record_type", "remote_id")
        .order_by()
    )
    return refused.union(reused).count()

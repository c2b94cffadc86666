"""What Health finds per entity type: the counts of each finding, for the overview, the tabs
and the tenant home."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from common.display_counts import Count
from common.entities import EntityType
from records import counts

from ..services import check_entity_type
from . import Scope, findings_of
from .wording import forecast


@dataclass
class EntityHealth:
    record_type: str
    unlinked: Count
    lost: Count
    found: dict[str, Count] = field(default_factory=dict)  # per finding name
    already_in_target: int = 0  # of the unlinked, how many the target probably has
    # Why, per finding that says so: (how many, "Fortnox tried to give them ids refdesk holds").
    in_target_reasons: list[tuple[int, str]] = field(default_factory=list)
    # Large integrations: scanned findings come from the latest scan (None: not scanned yet).
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
        return sum(int(count) for count in self.found.values())

    def forecast(self, integration) -> str:
        unlinked = int(self.unlinked)
        return forecast(
            integration, self.record_type, unlinked, self.already_in_target,
            self.in_target_reasons,
        )  # fmt: skip


def entity_health(integration, record_type: str, kept: counts.Counts | None = None) -> EntityHealth:
    """What Health finds for one entity type; `kept` (its kept counts) when already read."""
    check_entity_type(integration, record_type)
    kept = kept or counts.counts_of(integration, record_type)
    scope = Scope(integration, record_type)
    findings = findings_of(integration, record_type, scope)
    health = EntityHealth(
        record_type=record_type,
        unlinked=Count(kept.unlinked),
        lost=Count(kept.lost),
        found={finding.name: finding.count(kept) for finding in findings},
    )
    for finding in findings:
        n, reason = finding.in_target(health.found[finding.name])
        health.already_in_target += n
        if n and reason:
            health.in_target_reasons.append((n, reason))
    if any(finding.scanned for finding in findings) and scope.large:
        health.scanned = True
        health.as_of = min((scan.computed_at for scan in scope.scans.values()), default=None)
    return health


def overview(integration) -> list[EntityHealth]:
    kept = counts.kept_counts(integration)
    return [entity_health(integration, t, kept[t]) for t in integration.synced_entity_types]

"""Integration health: why records get duplicated, found in the references and their history.

Each finding is one class (base.Finding) that declares its name, label, fixes, template and
CSV columns, and knows its rows, their evidence and each fix's change set (records.changes:
previewed, applied as one restorable batch). FINDINGS registers them once: the Health pages
(views_health.py), the fix and scan jobs (jobs.py) and the CSV export read it, so adding a
finding is writing its class and naming it here.

- lost.py: lost links, put back where the old target id is still free;
- duplicates.py: probable duplicates and two target records (scanned by a job when large,
  scans.py), merged into the source's record;
- reused.py: ids a remote system reused after a wipe, unlinked or acknowledged;
- refused.py: connector writes the API refused (another record holds the id), unlinked from
  the holder; with reused ids, the signals of incident.py (a remote reset);
- summary.py: the counts per entity type and the forecast (wording.py) of the next sync.
Reconciliation with a remote export is references.reconcile.
"""

from __future__ import annotations

from .base import Finding, Fix, Scope
from .duplicates import ProbableDuplicates, TwoTargets
from .lost import LostLinks
from .refused import RefusedWrites
from .reused import ReusedIds

FINDINGS: dict[str, type[Finding]] = {
    finding.name: finding
    for finding in (LostLinks, ProbableDuplicates, TwoTargets, ReusedIds, RefusedWrites)
}
DEFAULT = LostLinks.name

__all__ = ["DEFAULT", "FINDINGS", "Finding", "Fix", "Scope", "findings_of", "finding_named"]


def findings_of(integration, record_type: str, scope: Scope | None = None) -> list[Finding]:
    """Every finding of one integration and entity type, sharing one scope."""
    scope = scope or Scope(integration, record_type)
    return [finding(scope) for finding in FINDINGS.values()]


def finding_named(integration, record_type: str, name: str, scope: Scope | None = None) -> Finding:
    """The finding of this name (the default one for a name that is none)."""
    scope = scope or Scope(integration, record_type)
    return FINDINGS.get(name, FINDINGS[DEFAULT])(scope)

"""What every Health finding declares (Finding), its fixes (Fix), and what the findings of one
integration and entity type share (Scope)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

from common.display_counts import Count
from common.errors import DomainError
from records import changes
from records.audit import Actor
from records.counts import Counts

from . import scans


@dataclass(frozen=True)
class Fix:
    """One way to fix a finding's rows."""

    action: str  # the form's value, kept in a fix job's params
    label: str  # its button
    # A change set, previewed and applied as one restorable batch; else done at once (`act`).
    previewed: bool = True
    # It removes links: never the page's main button (a repair's most destructive choice is
    # never the default), even though its preview asks first.
    removes: bool = False


class Scope:
    """One integration and entity type, with what its findings ask once per request."""

    def __init__(self, integration, record_type: str):
        self.integration = integration
        self.record_type = record_type

    @cached_property
    def match_key(self) -> str:
        return self.integration.match_key(self.record_type)

    @cached_property
    def large(self) -> bool:
        """Whether scanned findings come from a scan (a job) rather than live queries."""
        return scans.is_large(self.integration, self.record_type)

    @cached_property
    def scans(self) -> dict:
        """The latest scan of each scanned finding, by finding name."""
        return {
            scan.finding: scan for scan in scans.latest_scans(self.integration, self.record_type)
        }


class Finding:
    """A declared Health finding: its rows, the evidence shown beside them, its fixes (each a
    change set of records.changes) and its CSV columns. Register it in references.findings."""

    name: ClassVar[str]  # in URLs (?finding=), job params, scans and export file names
    label: ClassVar[str]  # "Lost links"
    fixes: ClassVar[tuple[Fix, ...]]
    # Its help, table head, row and empty state: included with part="help" / "head" / ...
    template: ClassVar[str]
    scanned: ClassVar[bool] = False  # large integrations: found by a scan job
    # Its rows are unlinked source records the target probably has already: the forecast of
    # the next sync says how many of the records it creates exist there.
    already_in_target: ClassVar[bool] = False
    do_not_call_in_templates = True  # a template lists the classes of the registry

    def __init__(self, scope: Scope):
        self.scope = scope
        self.integration = scope.integration
        self.record_type = scope.record_type

    def rows(self):
        """Its rows, newest first (a stable order that keyset paging can seek)."""
        raise NotImplementedError

    def count(self, kept: Counts) -> Count:
        """How many rows it has, for the tabs and the overview (`kept`: the kept counts)."""
        raise NotImplementedError

    def in_target(self, found: Count) -> tuple[int, str]:
        """Of the unlinked source records, how many the target probably has already (the
        forecast of the next sync counts them), and why in a clause ("" : no reason to give).
        `found` is this finding's count."""
        return (int(found), "") if self.already_in_target else (0, "")

    def fixable_count(self, fix: Fix, count: Count) -> Count | None:
        """How many of its `count` rows `fix` would change, for the "all N" button (None: not
        counted, the button says "every one it can")."""
        return count

    def evidence(self, rows: list) -> list:
        """Each row of a page with what explains it."""
        raise NotImplementedError

    def csv_header(self) -> list[str]:
        raise NotImplementedError

    def csv_values(self, item) -> list:
        """One item of `evidence` as the cells of its CSV line."""
        raise NotImplementedError

    def change_set(self, fix: Fix, rows: list, actor: Actor):
        """The change set of a previewed fix of `rows` (rows of `rows()`)."""
        raise NotImplementedError

    def apply(self, fix: Fix, change_set, rows: list, *, progress=None) -> changes.Applied:
        return changes.apply(change_set, progress=progress)

    def act(self, fix: Fix, rows: list, actor: Actor) -> str:
        """Do a fix that is not previewed; the sentence that says what was done."""
        raise NotImplementedError

    def fix(self, action: str) -> Fix:
        for fix in self.fixes:
            if fix.action == action:
                return fix
        raise DomainError("Choose a fix for these rows.")

    def job_description(self, fix: Fix, size: int) -> str:
        return f"{fix.label}: {size:,} {self.record_type} {self.label.lower()}"

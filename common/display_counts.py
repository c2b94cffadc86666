"""Counts for display that stay cheap on big sets: exact when small, an estimate when large.

A page shows `capped_count(queryset)`: "1,433", or "about 1,000,000" in milliseconds where an
exact count would take a second. Counts the change engine keeps exactly are wrapped in `Count`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import OperationalError, transaction
from django.db import connection as db_connection

# Counts above this are not counted exactly on every page view (see capped_count). Counting
# 10,000 rows of a semi-join costs 100-450 ms at a million references; 1,000 costs a tenth.
COUNT_CAP = 1_000
# SQLite has no planner estimate to fall back on, and as the embedded default it holds small
# tenants: count exactly further there rather than show "1,000+" for 1,433 rows.
SQLITE_COUNT_CAP = 100_000
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by its timeout


@dataclass(frozen=True)
class Count:
    """A count for display: exact, or a lower bound / estimate when the set is large."""

    value: int
    exact: bool = True
    at_least: bool = False  # not estimated either: "more than value"

    def __int__(self) -> int:
        return self.value


# The most a count may cost on PostgreSQL before the page shows the planner's estimate instead.
# Counting up to COUNT_CAP rows is usually a few milliseconds, but when the planner misjudges
# an anti-join (the unlinked count) it can walk the whole table: 350 ms at a million.
COUNT_TIMEOUT_MS = 40
# Above this many times the cap, the planner's estimate is trusted without counting. Estimates
# of anti-joins (the unlinked count) run low, 7,600 for a real 17,700 at a million: with 10x
# that count took the slow exact path on every page view.
ESTIMATE_OVER_CAP = 2
# Below this planner cost (PostgreSQL's units: 1 per page read, 0.01 per row) a count is a few
# milliseconds at most and runs without the timeout's extra round trips; small tenants, whose
# every count is exact, would otherwise pay them six times per page.
CHEAP_COUNT_COST = 10_000


def capped_count(queryset, cap: int | None = None) -> Count:
    """Count exactly up to `cap` rows (bounded work); beyond it estimate.

    On PostgreSQL the estimate is the planner's row estimate (EXPLAIN, no scan), also used
    when a count the planner thinks costly takes longer than COUNT_TIMEOUT_MS; elsewhere it is
    the cap itself, shown as "about"/"more than".
    """
    if cap is None:
        cap = COUNT_CAP if db_connection.vendor == "postgresql" else SQLITE_COUNT_CAP
    rows = queryset.order_by().values("pk")[: cap + 1]
    if db_connection.vendor != "postgresql":
        counted = rows.count()
        return Count(counted) if counted <= cap else Count(cap, exact=False, at_least=True)
    plan = _plan(queryset)
    if plan.rows > ESTIMATE_OVER_CAP * cap:
        # Clearly large: the estimate is the answer (one EXPLAIN, no scan at all).
        return Count(plan.rows, exact=False)
    if plan.cost_of_first(cap + 1) <= CHEAP_COUNT_COST:
        counted = rows.count()  # small tables: a plain count, no timeout round trips
    else:
        counted = _count_within(rows, COUNT_TIMEOUT_MS)
        if counted is None:
            return Count(max(plan.rows, 1), exact=False)
    if counted <= cap:
        return Count(counted)
    return Count(max(plan.rows, cap + 1), exact=False)


def _count_within(rows, timeout_ms: int) -> int | None:
    """rows.count(), or None when PostgreSQL needs longer than timeout_ms for it."""
    nested = db_connection.in_atomic_block
    try:
        # In a transaction of its own (or a savepoint): the timeout ends with it, and a
        # cancelled count leaves any surrounding transaction usable.
        with transaction.atomic(), db_connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            counted = rows.count()
            if nested:  # a released savepoint would keep SET LOCAL to the end of the outer one
                cursor.execute("SET LOCAL statement_timeout = DEFAULT")
            return counted
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == QUERY_CANCELED:
            return None
        raise


@dataclass(frozen=True)
class _Plan:
    rows: int
    startup_cost: float
    total_cost: float

    def cost_of_first(self, n: int) -> float:
        """The planner's cost of reading the first n rows (what a LIMIT n count pays)."""
        share = min(1.0, n / max(self.rows, 1))
        return self.startup_cost + (self.total_cost - self.startup_cost) * share


def _plan(queryset) -> _Plan:
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with db_connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # psycopg may hand back text
        plan = json.loads(plan)
    top = plan[0]["Plan"]
    tasks = 1
    job = top.get("Distributed Query", {}).get("Job")
    if job and job.get("Tasks"):
        # Citus: the coordinator's node is a placeholder (0 or 100,000 rows); the estimate is
        # in the plan each shard made. A tenant's query is one task; were it several, every
        # shard is taken to hold about what the one shown holds.
        tasks = int(job.get("Task Count", 1))
        top = job["Tasks"][0]["Remote Plan"][0][0]["Plan"]
    return _Plan(
        int(top["Plan Rows"]) * tasks, float(top["Startup Cost"]), float(top["Total Cost"])
    )

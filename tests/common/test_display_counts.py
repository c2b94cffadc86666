"""capped_count stays cheap: exact when the set is small, an estimate when counting is slow."""

import pytest
from django.db import connection, transaction

from common import display_counts
from common.display_counts import capped_count
from records.models import RemoteId
from tests.factories import make_reference

pytestmark = pytest.mark.django_db


def test_small_sets_are_counted_exactly(world):
    for n in range(3):
        make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}")

    with transaction.atomic():
        # As the pages ask: one tenant's rows (on Citus, one shard).
        count = capped_count(RemoteId.objects.filter(tenant=world.tenant, connection=world.erp))
        if connection.vendor == "postgresql":
            # The count's time budget ended with it, not with the surrounding transaction.
            with connection.cursor() as cursor:
                cursor.execute("SHOW statement_timeout")
                assert cursor.fetchone()[0] == "0"

    assert (count.value, count.exact) == (3, True)


@pytest.mark.postgres
def test_a_count_slower_than_its_budget_gives_the_estimate_and_leaves_the_transaction_usable(
    world, monkeypatch
):
    # As for a large table: the planner's cost says the count may be expensive.
    monkeypatch.setattr(display_counts, "CHEAP_COUNT_COST", 0)
    for n in range(3):
        make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}")
    # Stands in for a misplanned anti-join: the count itself takes 200 ms.
    slow = RemoteId.objects.filter(tenant=world.tenant, connection=world.erp).extra(
        where=["(SELECT 1 FROM pg_sleep(0.2)) = 1"]
    )

    with transaction.atomic():
        count = capped_count(slow)
        # The cancelled count rolled back to its savepoint only; the timeout did not stay set.
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"
        assert RemoteId.objects.filter(tenant=world.tenant, connection=world.erp).count() == 3

    assert count.exact is False
    assert count.value >= 1


@pytest.mark.postgres
def test_a_costly_count_that_finishes_in_time_is_exact(world, monkeypatch):
    monkeypatch.setattr(display_counts, "CHEAP_COUNT_COST", 0)
    for n in range(3):
        make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}")

    with transaction.atomic():
        count = capped_count(RemoteId.objects.filter(tenant=world.tenant, connection=world.erp))
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"  # reset: the savepoint was released, not ended

    assert (count.value, count.exact) == (3, True)

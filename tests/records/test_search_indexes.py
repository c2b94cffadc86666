"""Substring search on remote ids and refs is served by trigram indexes on PostgreSQL."""

import pytest
from django.db import connection, transaction

from records.models import RemoteId
from tests.factories import make_reference

pytestmark = pytest.mark.django_db


def plan_of(queryset) -> str:
    with transaction.atomic(), connection.cursor() as cursor:
        # The test tables are tiny: tell the planner a scan is out so it shows what it can use.
        cursor.execute("SET LOCAL enable_seqscan = off")
        # No ORDER BY id: otherwise, depending on table statistics left by earlier tests, the
        # planner may walk the primary key in order and filter instead (flaky under -n 2).
        return queryset.order_by().explain()


@pytest.mark.postgres
def test_icontains_on_remote_id_and_ref_uses_the_trigram_indexes(world):
    make_reference(
        world.integration, source_id="5001001234", target_id="90001", target_ref="Faktura 90001"
    )

    assert "remoteid_remote_id_trgm" in plan_of(
        RemoteId.objects.filter(remote_id__icontains="0012")
    )
    assert "remoteid_remote_ref_trgm" in plan_of(
        RemoteId.objects.filter(remote_ref__icontains="faktura")
    )


def test_substring_search_finds_ids_and_refs_case_insensitively(world):
    make_reference(
        world.integration, source_id="5001001234", target_id="INV-90001", target_ref="Faktura 90001"
    )

    assert set(
        RemoteId.objects.filter(remote_id__icontains="inv-9").values_list("remote_id", flat=True)
    ) == {"INV-90001"}
    assert RemoteId.objects.filter(remote_ref__icontains="FAKTURA").count() == 1

"""The Records list's FilterSet is plain django-filter: an invalid value is skipped while the
valid ones still apply, a filter added the usual way works beside the others, and the
connection filters only offer (and only match) the tenant's own connections."""

import django_filters
import pytest

from records.filters import RecordFilterSet
from records.models import Record
from tests.factories import RecordFactory, make_reference

pytestmark = pytest.mark.django_db


def filtered(world, data, filterset_class=RecordFilterSet) -> set[str]:
    records = Record.objects.for_tenant(world.tenant).filter(record_type="order")
    filterset = filterset_class(data, queryset=records, tenant=world.tenant)
    return {record.local_id for record in filterset.qs}


def test_an_invalid_value_is_skipped_and_the_valid_ones_apply(world):
    mine = RecordFactory(tenant=world.tenant, last_modified_by="user/anna")
    RecordFactory(tenant=world.tenant, last_modified_by="system/sync")

    data = {"modified_after": "notadate", "last_modified_by": "user/anna", "known_to": "x"}

    assert filtered(world, data) == {mine.local_id}


def test_a_filter_added_the_usual_way_narrows_with_the_others(world):
    class WithVersion(RecordFilterSet):
        version_at_least = django_filters.NumberFilter(field_name="version", lookup_expr="gte")

    linked = make_reference(world.integration, source_id="5001", target_id="INV-1")
    make_reference(world.integration, source_id="5002")
    Record.objects.filter(pk=linked.pk).update(version=5)
    data = {"known_to": world.erp.pk, "version_at_least": "3"}

    assert filtered(world, data, WithVersion) == {linked.local_id}
    assert filtered(world, {"version_at_least": "9"}, WithVersion) == set()


def test_another_tenants_connection_is_not_a_choice(world):
    make_reference(world.integration, source_id="5001")
    foreign = world.other_integration.source

    filterset = RecordFilterSet(
        {"known_to": foreign.pk},
        queryset=Record.objects.for_tenant(world.tenant),
        tenant=world.tenant,
    )

    assert "known_to" in filterset.form.errors
    assert filterset.qs.count() == 1  # ignored: the tenant's records, unfiltered

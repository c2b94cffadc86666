"""The References table's filters are a real django-filter FilterSet: each filter narrows the
rows itself, a filter added the usual way works beside them, and invalid values are skipped
while the valid ones still apply."""

import django_filters
import pytest

from records.models import Record
from references.filters import DEFAULTS, ReferenceFilterSet, reference_rows
from references.queries import KEYSETS, SORTS
from references.services import delete_reference
from tests.factories import make_reference

pytestmark = pytest.mark.django_db


def list_url(world):
    integration = world.integration
    return f"/t/{integration.tenant.slug}/integrations/{integration.pk}/references/orders/"


def shown(client, world, query: str) -> list[str]:
    """The source ids of the table's rows, in order, for a query string."""
    response = client.get(list_url(world) + query)
    assert response.status_code == 200
    return [row.remote_id for row in response.context["page"].rows]


def source_ids(rows) -> list[str]:
    return [row.remote_id for row in rows]


@pytest.fixture
def table(world):
    """Linked, lost (linked, then unlinked) and never-linked rows; OLD last changed in 2020."""
    make_reference(world.integration, source_id="5001", target_id="INV-1", source_ref="#A1")
    make_reference(world.integration, source_id="5002", target_id="INV-2", source_ref="#B2")
    lost = make_reference(world.integration, source_id="5003", target_id="INV-3")
    delete_reference(world.integration, lost, world.actor)
    make_reference(world.integration, source_id="5004", source_ref="#A4")
    old = make_reference(world.integration, source_id="OLD", target_id="INV-9")
    Record.objects.filter(pk=old.pk).update(last_modified="2020-01-01T00:00:00Z")
    return world


class TestEachFilterThroughHttp:
    def test_linked(self, admin_client, table):
        assert set(shown(admin_client, table, "?linked=linked")) == {"5001", "5002", "OLD"}
        assert set(shown(admin_client, table, "?linked=unlinked")) == {"5003", "5004"}
        assert shown(admin_client, table, "?linked=lost") == ["5003"]
        assert shown(admin_client, table, "?linked=never") == ["5004"]
        assert len(shown(admin_client, table, "?linked=all")) == 5

    def test_modified_after(self, admin_client, table):
        assert "OLD" not in shown(admin_client, table, "?modified_after=2024-01-01")
        assert "OLD" in shown(admin_client, table, "?modified_after=2019-01-01")

    def test_search_ranks_exact_matches_first(self, admin_client, table):
        assert shown(admin_client, table, "?q=inv-2") == ["5002"]  # substring: any case
        assert shown(admin_client, table, "?q=%23A&sort=source") == ["5001", "5004"]
        make_reference(table.integration, source_id="X-5002", target_id="T")
        # The exact match first, though "-source" alone would put X-5002 first.
        assert shown(admin_client, table, "?q=5002&sort=-source") == ["5002", "X-5002"]

    @pytest.mark.parametrize("sort", list(SORTS))
    def test_sort(self, admin_client, table, sort):
        rows = reference_rows(table.integration, "order", sort=sort)
        keyset = KEYSETS[sort]
        prefix = "-" if keyset.descending else ""

        assert shown(admin_client, table, f"?sort={sort}") == source_ids(rows)
        # Each sort is its keyset's order, so Next/Previous can seek in it.
        assert rows.query.order_by == (f"{prefix}{keyset.column}", f"{prefix}{keyset.tie}")

    def test_filters_combine(self, admin_client, table):
        assert shown(admin_client, table, "?q=%23A&linked=never") == ["5004"]
        query = "?q=INV&linked=linked&modified_after=2024-01-01&sort=source"
        assert shown(admin_client, table, query) == ["5001", "5002"]


class WithRefFilter(ReferenceFilterSet):
    """Two filters added the usual way: a declared lookup and a method filter."""

    source_ref = django_filters.CharFilter(field_name="remote_ref", lookup_expr="icontains")
    target_prefix = django_filters.CharFilter(method="filter_target_prefix")

    def filter_target_prefix(self, rows, name, value):
        return rows.filter(target_remote_id__startswith=value)


class TestAFilterAddedTheUsualWay:
    def test_a_declared_filter_narrows_the_rows_with_the_built_in_ones(self, table):
        def rows(**data):
            filterset = WithRefFilter(data, integration=table.integration, record_type="order")
            return source_ids(filterset.qs)

        assert sorted(rows(source_ref="#a")) == ["5001", "5004"]
        assert rows(source_ref="#a", linked="never") == ["5004"]
        assert rows(source_ref="#a", linked="linked", q="5001") == ["5001"]
        assert rows(source_ref="#a", sort="source") == ["5001", "5004"]
        assert rows(source_ref="#a", sort="-source") == ["5004", "5001"]

    def test_a_method_filter_sees_the_annotated_target_side(self, table):
        filterset = WithRefFilter(
            {"target_prefix": "INV-", "modified_after": "2024-01-01", "sort": "source"},
            integration=table.integration,
            record_type="order",
        )

        assert source_ids(filterset.qs) == ["5001", "5002"]

    def test_search_keeps_its_ranking_beside_an_added_filter(self, table):
        make_reference(table.integration, source_id="X-5001", target_id="INV-5001")
        filterset = WithRefFilter(
            {"q": "5001", "target_prefix": "INV", "sort": "-source"},
            integration=table.integration,
            record_type="order",
        )

        # The exact match first, even though "-source" alone would put X-5001 first.
        assert source_ids(filterset.qs) == ["5001", "X-5001"]


class TestInvalidValuesAreIgnored:
    def test_invalid_fields_are_skipped_and_valid_ones_still_apply(self, table):
        filterset = ReferenceFilterSet(
            {"linked": "bogus", "modified_after": "notadate", "sort": "upwards", "q": "INV"},
            integration=table.integration,
            record_type="order",
        )

        assert set(filterset.form.errors) == {"linked", "modified_after", "sort"}
        assert filterset.params == {**DEFAULTS, "q": "INV"}
        assert source_ids(filterset.qs) == source_ids(
            reference_rows(table.integration, "order", q="INV")
        )
        assert set(source_ids(filterset.qs)) == {"5001", "5002", "OLD"}

    def test_the_page_filters_by_the_valid_ones_and_names_the_ignored_ones(
        self, admin_client, table
    ):
        first = Record.objects.get(remote_ids__remote_id="5001")
        Record.objects.filter(pk=first.pk).update(last_modified="2023-01-01T00:00:00Z")

        response = admin_client.get(list_url(table) + "?linked=bogus&q=%23A&sort=upwards")

        assert [row.remote_id for row in response.context["page"].rows] == ["5004", "5001"]
        assert response.context["ignored_params"] == [
            "linked=bogus is not valid: showing all",
            "sort=upwards is not valid: showing -modified",
        ]

    def test_no_data_and_empty_data_are_the_whole_tab_newest_first(self, table):
        unbound = ReferenceFilterSet(None, integration=table.integration, record_type="order")
        empty = ReferenceFilterSet({}, integration=table.integration, record_type="order")

        newest_first = source_ids(reference_rows(table.integration, "order"))
        assert source_ids(unbound.qs) == source_ids(empty.qs) == newest_first
        assert newest_first[-1] == "OLD" and len(newest_first) == 5
        assert unbound.params == empty.params == DEFAULTS

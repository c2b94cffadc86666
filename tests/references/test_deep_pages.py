"""Pages opened by number (?page=N: a bookmark, a typed page) show exactly the rows of page N:
the rows a plain ORDER BY ... OFFSET (N - 1) * size gives, for every sort and filter.

The expected rows come from SQL written here, not from the app's queries. The tab has what
makes an OFFSET over the record index alone go wrong: records of the type the tab does not
show (only the target knows them, only another connection, none), ties on last_modified,
unlinked rows, another type and another tenant.
"""

from datetime import timedelta

import django_filters
import pytest
from django.db import connection
from django.utils import timezone

from common.paging import MAX_PAGE_NUMBER, Located, paged
from integrations.models import Integration
from records import counts
from records.models import Record, RemoteId
from references import queries
from references.filters import ReferenceFilterSet
from references.queries import KEYSETS, tab_locator
from references.views_table import ReferenceListView
from tests.factories import ConnectionFactory, RecordFactory, RemoteIdFactory, make_reference

pytestmark = pytest.mark.django_db

SORTS = ["-modified", "modified", "source", "-source"]
ORDER_BY = {
    "-modified": "r.last_modified DESC, r.local_id DESC",
    "modified": "r.last_modified ASC, r.local_id ASC",
    "source": "s.remote_id ASC, s.record_id ASC",
    "-source": "s.remote_id DESC, s.record_id DESC",
}
TAB_ROWS = 110  # every 11th unlinked
BASE = timezone.now() - timedelta(days=30)


def moment(index: int):
    # Three records share each timestamp: local_id breaks the ties, across page boundaries.
    return BASE + timedelta(minutes=index // 3)


def make_tab(world):
    """The tab's 110 rows, and 23 records of the type that are not rows of it, interleaved."""
    integration, other = world.integration, ConnectionFactory(tenant=world.tenant, name="API")
    for index in range(TAB_ROWS):
        # Source ids in an order of their own, unrelated to the timestamps.
        source_id = f"S{(index * 37) % TAB_ROWS:04d}"
        target_id = f"T{index:04d}" if index % 11 else None
        record = make_reference(integration, source_id=source_id, target_id=target_id)
        Record.objects.filter(pk=record.pk).update(last_modified=moment(index))
    for index in range(23):
        record = RecordFactory(tenant=world.tenant)  # of the type, never a row of the tab
        if index < 15:  # only the target knows it (a duplicate a sync made)
            RemoteIdFactory(record=record, connection=integration.target, remote_id=f"X{index}")
        elif index < 20:  # only another connection knows it
            RemoteIdFactory(record=record, connection=other, remote_id=f"API{index}")
        Record.objects.filter(pk=record.pk).update(last_modified=moment(index * 5 + 1))
    # Another type and another tenant.
    for index in range(5):
        make_reference(integration, "article", source_id=f"S{index:04d}", target_id=f"A{index}")
        make_reference(world.other_integration, source_id=f"S{index:04d}")


def drop_the_records_outside_the_tab(world):
    """Leave the type with only the tab's records: the record index then holds exactly them."""
    outside = Record.objects.filter(tenant=world.tenant, record_type="order").exclude(
        pk__in=RemoteId.objects.filter(connection=world.integration.source).values("record_id")
    )
    assert outside.delete()[0]


def expected_rows(integration, sort, number, size, where="", params=()):
    """Page `number` of the tab by a plain ORDER BY/OFFSET: the source rows' ids."""
    sql = f"""
        SELECT s.id FROM {RemoteId._meta.db_table} s
        JOIN {Record._meta.db_table} r ON r.tenant_id = s.tenant_id AND r.id = s.record_id
        WHERE s.tenant_id = %s AND s.connection_id = %s AND s.record_type = 'order' {where}
        ORDER BY {ORDER_BY[sort]} LIMIT %s OFFSET %s
    """  # noqa: S608 (the table names and orderings are the test's own)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [integration.tenant_id, integration.source_id, *params, size, (number - 1) * size],
        )
        return [row[0] for row in cursor.fetchall()]


def fresh(integration):
    return Integration.objects.select_related("tenant", "source", "target").get(pk=integration.pk)


def page_by_number(integration, sort, number, size, **filters):
    filterset = ReferenceFilterSet(
        {"sort": sort, **filters}, integration=integration, record_type="order"
    )
    tab_size = counts.kept_counts(integration)["order"].total
    locate = None if filters else tab_locator(integration, "order", sort, lambda: tab_size)
    page, _, _ = paged(filterset.qs, KEYSETS[sort], number, size, locate=locate)
    return page


@pytest.fixture
def tab(world):
    make_tab(world)
    return fresh(world.integration)


@pytest.fixture
def prove_on_every_page(monkeypatch):
    # The proof that the record index holds exactly the tab runs from a share of the tab on
    # (at a million it costs more than a shallow page's own ids); here on every page.
    monkeypatch.setattr(queries, "PROOF_PAYS_FROM", 10**9)


# --- common.paging with the tab's locate, page size 7 (16 pages, the last one short) ---------


@pytest.mark.parametrize("sort", SORTS)
def test_every_numbered_page_is_the_offset_page(tab, sort, prove_on_every_page):
    size = 7
    for number in range(1, TAB_ROWS // size + 3):
        page = page_by_number(tab, sort, number, size)

        expected = expected_rows(tab, sort, number, size)
        assert [row.pk for row in page.rows] == expected, (sort, number)
        assert page.has_next == bool(expected_rows(tab, sort, number + 1, size))


@pytest.mark.parametrize("sort", SORTS)
def test_every_numbered_page_is_the_offset_page_when_the_tab_is_every_record(
    world, sort, prove_on_every_page
):
    make_tab(world)
    drop_the_records_outside_the_tab(world)
    tab, size = fresh(world.integration), 7
    for number in range(1, TAB_ROWS // size + 3):
        page = page_by_number(tab, sort, number, size)

        assert [row.pk for row in page.rows] == expected_rows(tab, sort, number, size)


@pytest.mark.parametrize("sort", SORTS)
def test_a_page_past_the_end_is_empty(tab, sort, prove_on_every_page):
    for number in (TAB_ROWS // 7 + 2, 10**6, 10**30):
        page = page_by_number(tab, sort, number, 7)

        assert page.rows == [] and not page.has_next
        assert page.number <= MAX_PAGE_NUMBER


@pytest.mark.parametrize("sort", ["-modified", "modified"])
def test_the_record_index_is_used_only_when_it_holds_exactly_the_tab(
    world, sort, prove_on_every_page
):
    make_tab(world)
    tab = fresh(world.integration)
    in_tab = counts.kept_counts(tab)["order"].total
    of_the_type = Record.objects.filter(tenant=world.tenant, record_type="order").count()
    assert (in_tab, of_the_type) == (TAB_ROWS, TAB_ROWS + 23)

    # 23 records of the type are not rows of the tab: whatever size the kept count claims
    # (the right one, or the number of records, which the record index alone would confirm),
    # the record index is not used and the page comes from the row query's ids.
    for claimed in (in_tab, of_the_type, of_the_type + 1, 0):
        assert tab_locator(tab, "order", sort, lambda claimed=claimed: claimed)(30) is None
    # Past the tab's end: proven by the record index only when the type has no record there.
    assert tab_locator(tab, "order", sort, lambda: in_tab)(in_tab) is None
    assert tab_locator(tab, "order", sort, lambda: in_tab)(of_the_type) == Located(None)

    drop_the_records_outside_the_tab(world)
    located = tab_locator(tab, "order", sort, lambda: in_tab)(30)
    record = Record.objects.get(
        pk=RemoteId.objects.get(pk=expected_rows(tab, sort, 31, 1)[0]).record_id
    )
    assert located == Located((record.last_modified, record.local_id))
    assert tab_locator(tab, "order", sort, lambda: in_tab + 1)(30) is None  # a wrong claim


@pytest.mark.parametrize("sort", ["source", "-source"])
def test_source_sorts_locate_from_the_source_id_index(tab, sort):
    located = tab_locator(tab, "order", sort, lambda: 0)(30)

    row = RemoteId.objects.get(pk=expected_rows(tab, sort, 31, 1)[0])
    assert located == Located((row.remote_id, row.record_id))
    assert tab_locator(tab, "order", sort, lambda: 0)(TAB_ROWS) == Located(None)


def target_filter(tab, exists: bool):
    return (
        f"AND {'' if exists else 'NOT '}EXISTS (SELECT 1 FROM {RemoteId._meta.db_table} t"
        " WHERE t.tenant_id = s.tenant_id AND t.record_id = s.record_id AND t.connection_id = %s)",
        [tab.target_id],
    )


@pytest.mark.parametrize("sort", SORTS)
def test_filtered_numbered_pages_are_the_offset_pages(tab, sort):
    since = moment(60)
    cases = [
        ({"linked": "linked"}, *target_filter(tab, True)),
        ({"linked": "unlinked"}, *target_filter(tab, False)),
        (
            {"modified_after": since.isoformat()},
            "AND r.last_modified >= %s",
            [connection.ops.adapt_datetimefield_value(since)],  # as the database holds it
        ),
    ]
    for filters, where, params in cases:
        for number in range(1, 8):
            page = page_by_number(tab, sort, number, 6, **filters)

            expected = expected_rows(tab, sort, number, 6, where, params)
            assert [row.pk for row in page.rows] == expected, (filters, number)


def test_search_results_by_number_are_the_offset_pages(tab):
    # Ranked (exact matches first), so no keyset: the page's ids by OFFSET, then its rows.
    filterset = ReferenceFilterSet({"q": "S00"}, integration=tab, record_type="order")
    everything = [row.pk for row in filterset.qs]
    assert len(everything) > 20
    for number in range(1, 6):
        page, _, _ = paged(filterset.qs, None, number, 5)

        assert [row.pk for row in page.rows] == everything[(number - 1) * 5 : number * 5]


# --- the References page over HTTP, 25 a page -------------------------------------------------


def list_url(tab, **params):
    from urllib.parse import urlencode

    url = f"/t/{tab.tenant.slug}/integrations/{tab.pk}/references/orders/"
    return f"{url}?{urlencode(params)}" if params else url


@pytest.mark.parametrize("sort", SORTS)
def test_the_page_opened_by_number_shows_the_offset_page(
    admin_client, tab, sort, prove_on_every_page
):
    for number in range(1, 7):
        response = admin_client.get(list_url(tab, sort=sort, per_page=25, page=number))

        assert response.status_code == 200
        expected = expected_rows(tab, sort, number, 25)
        assert [row.pk for row in response.context["page"].rows] == expected, number
        if expected:
            first = (number - 1) * 25 + 1
            assert f"Showing {first}–{first + len(expected) - 1} of {TAB_ROWS}" in response.text
    # "Next" from a numbered page goes on by keyset, to exactly the next page.
    deep = admin_client.get(list_url(tab, sort=sort, per_page=25, page=3))
    following = admin_client.get(deep.context["next_url"])
    assert "after=" in deep.context["next_url"]
    assert [row.pk for row in following.context["page"].rows] == expected_rows(tab, sort, 4, 25)
    before = admin_client.get(deep.context["prev_url"])
    assert [row.pk for row in before.context["page"].rows] == expected_rows(tab, sort, 2, 25)


@pytest.mark.parametrize("page", ["6", "999999", "99999999999999999999", "1e9", "-3"])
def test_a_page_number_past_the_end_or_absurd_answers_with_a_way_back(admin_client, tab, page):
    response = admin_client.get(list_url(tab, per_page=25) + f"&page={page}")

    assert response.status_code == 200
    if page.isdigit():
        assert response.context["page"].rows == []
        assert "is past the end" in response.text
        assert 'The last page is <a href="' in response.text
        assert response.context["last_page_url"] == list_url(tab, per_page=25, page=5)
    else:  # not a page number: the first page
        assert response.context["page"].number == 1 and response.context["page"].rows


def test_a_filtered_page_past_the_end_says_so_not_that_nothing_matches(admin_client, tab):
    response = admin_client.get(list_url(tab, linked="unlinked", page=40))

    assert response.status_code == 200
    assert "Page 40 is past the end" in response.text
    assert "No unlinked" not in response.text


def test_a_filter_added_to_the_filterset_is_not_paged_by_the_tabs_index(
    admin_client, tab, monkeypatch
):
    class WithPrefix(ReferenceFilterSet):
        prefix = django_filters.CharFilter(field_name="remote_id", lookup_expr="startswith")

    monkeypatch.setattr(ReferenceListView, "filterset_class", WithPrefix)
    response = admin_client.get(list_url(tab, prefix="S00", sort="-source", per_page=25, page=2))

    # 100 of the 110 source ids start with S00: the tab's own page 2 starts 10 rows earlier.
    expected = expected_rows(tab, "-source", 2, 25, "AND s.remote_id LIKE 'S00%%'")
    assert [row.pk for row in response.context["page"].rows] == expected
    assert expected != expected_rows(tab, "-source", 2, 25)


# --- the Records list and the Jobs list ------------------------------------------------------


def test_records_pages_by_number_are_the_offset_pages(support_client, tab, world):
    expected_all = list(
        Record.objects.filter(tenant=world.tenant, record_type="order")
        .order_by("-last_modified", "-local_id")
        .values_list("local_id", flat=True)
    )
    for number in range(1, 8):
        response = support_client.get(f"/t/acme/records/order/?per_page=25&page={number}")

        shown = [record.local_id for record in response.context["records"]]
        assert shown == expected_all[(number - 1) * 25 : number * 25], number
    # Filtered (known to the target): from the ids, the same OFFSET page.
    known = list(
        Record.objects.filter(tenant=world.tenant, record_type="order")
        .filter(pk__in=RemoteId.objects.filter(connection=tab.target).values("record_id"))
        .order_by("-last_modified", "-local_id")
        .values_list("local_id", flat=True)
    )
    response = support_client.get(
        f"/t/acme/records/order/?per_page=25&page=3&known_to={tab.target_id}"
    )
    assert [record.local_id for record in response.context["records"]] == known[50:75]


@pytest.mark.parametrize("url", ["/t/acme/records/order/", "/t/acme/jobs/"])
def test_absurd_page_numbers_on_the_records_and_jobs_lists(support_client, tab, url):
    response = support_client.get(f"{url}?page=99999999999999999999")

    assert response.status_code == 200

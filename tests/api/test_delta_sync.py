"""GET /api/v1/<type>?modifiedAtOrAfter=...: oldest first, keyset-paginated, nothing lost."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from records.models import Record
from tests.factories import RecordFactory

from .conftest import feed_queries

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_orders(world, count, *, at=T0, step=timedelta(seconds=1)):
    return [
        RecordFactory(tenant=world.tenant, record_type="order", last_modified=at + step * index)
        for index in range(count)
    ]


def page_through(api, params, *, between=None):
    """Every localId, page by page; `between(page_number)` runs after each page."""
    seen, cursor, pages = [], None, 0
    while True:
        response = api.get("order", {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.json()
        body = response.json()
        seen += [item["localId"] for item in body["items"]]
        cursor = body["nextCursor"]
        pages += 1
        if between:
            between(pages)
        if not body["hasMore"]:
            return seen, cursor


def test_records_changed_since_come_oldest_first(api, world):
    old, *recent = make_orders(world, 4)
    body = api.get("order", {"modifiedAtOrAfter": (T0 + timedelta(seconds=1)).isoformat()}).json()
    assert [item["localId"] for item in body["items"]] == [r.local_id for r in recent]
    assert body["hasMore"] is False
    assert old.local_id not in str(body)


def test_at_or_after_includes_the_exact_time(api, world):
    (record,) = make_orders(world, 1)
    body = api.get("order", {"modifiedAtOrAfter": "2025-03-01T12:00:00Z"}).json()
    assert [item["localId"] for item in body["items"]] == [record.local_id]


def test_a_time_without_offset_is_utc(api, world):
    (record,) = make_orders(world, 1)
    assert api.get("order", {"modifiedAtOrAfter": "2025-03-01T12:00:00"}).json()["items"]
    assert not api.get("order", {"modifiedAtOrAfter": "2025-03-01T12:00:01"}).json()["items"]


def test_only_the_asked_type_is_listed(api, world):
    make_orders(world, 2)
    RecordFactory(tenant=world.tenant, record_type="customer")
    assert len(api.get("customer").json()["items"]) == 1


def test_records_with_the_same_time_page_by_local_id(api, world):
    """On PostgreSQL the feed goes by writing transaction, then by row: these seven were
    written in one (the test's), one after another."""
    same_time = make_orders(world, 7, step=timedelta(0))
    seen, _ = page_through(api, {"limit": 2})
    if connection.vendor == "postgresql":
        assert seen == [r.local_id for r in same_time]
    else:
        assert seen == sorted(r.local_id for r in same_time)


def test_paging_with_writes_in_between_skips_nothing_and_repeats_nothing(api, world):
    """Others create and change records while a client pages; every record that existed
    unchanged is seen exactly once, and records written meanwhile come after."""
    before = make_orders(world, 9, at=T0)
    changed_meanwhile, created_meanwhile = [], []

    def others_write(page_number):
        # Change one record the client has already seen and one it has not yet seen, and
        # create a new one: all get a last_modified after everything listed so far.
        now = T0 + timedelta(hours=page_number)
        seen_one, unseen_one = before[page_number - 1], before[-page_number]
        for record in (seen_one, unseen_one):
            Record.objects.filter(pk=record.pk).update(last_modified=now)
            changed_meanwhile.append(record.local_id)
        created_meanwhile.append(
            RecordFactory(tenant=world.tenant, record_type="order", last_modified=now).local_id
        )

    seen, _ = page_through(
        api,
        {"modifiedAtOrAfter": T0.isoformat(), "limit": 2},
        between=lambda n: n <= 3 and others_write(n),
    )

    # Nothing skipped: every record is there, including those created meanwhile.
    assert set(seen) == {r.local_id for r in before} | set(created_meanwhile)
    # Nothing repeated except records whose lastModified moved forward after being listed:
    # they come again, later, as delta sync wants.
    repeated = {local_id for local_id in seen if seen.count(local_id) > 1}
    assert repeated <= set(changed_meanwhile)
    assert all(seen.count(local_id) <= 2 for local_id in seen)
    # Order of the listing follows lastModified.
    times = {r.local_id: r.last_modified for r in Record.objects.all()}
    last_seen = [times[local_id] for local_id in seen[-3:]]
    assert last_seen == sorted(last_seen)


def test_the_last_cursor_resumes_a_later_sync_with_only_what_changed(api, world):
    make_orders(world, 3)
    seen, cursor = page_through(api, {"limit": 2})
    assert len(seen) == 3
    assert api.get("order", {"cursor": cursor}).json()["items"] == []
    fresh = RecordFactory(tenant=world.tenant, record_type="order")
    body = api.get("order", {"cursor": cursor}).json()
    assert [item["localId"] for item in body["items"]] == [fresh.local_id]


def test_limit_defaults_to_100_and_is_at_most_1000(api, world):
    Record.objects.bulk_create(
        [
            Record(tenant=world.tenant, record_type="order", last_modified_by="system/tests")
            for _ in range(101)
        ]
    )
    body = api.get("order").json()
    assert len(body["items"]) == 100
    assert body["hasMore"] is True
    assert api.get("order", {"limit": 1000}).status_code == 200
    for bad in (0, 1001, "many"):
        response = api.get("order", {"limit": bad})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "limit"


@pytest.mark.parametrize("cursor", ["garbage", "Zm9v", "MjAyNXx4eA"])
def test_a_cursor_the_api_did_not_give_is_422(api, world, cursor):
    response = api.get("order", {"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "cursor",
            "message": "This cursor is not one the API gave out.",
            "code": "invalid",
        }
    ]


def test_an_invalid_time_is_422_on_that_field(api, world):
    response = api.get("order", {"modifiedAtOrAfter": "yesterday"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "modifiedAtOrAfter"


def test_a_page_takes_a_fixed_number_of_queries(api, world, django_assert_num_queries):
    make_orders(world, 30)
    with django_assert_num_queries(feed_queries(2)):
        assert len(api.get("order").json()["items"]) == 30

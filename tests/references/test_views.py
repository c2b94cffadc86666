"""The References page through Django's test client: what support staff and admins see and do."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.display_counts import capped_count
from records.audit import mark_changed
from records.models import AuditEntry, Batch, Record, RemoteId
from references.filters import ReferenceFilterSet, reference_rows
from references.services import (
    ReferenceInput,
    add_reference,
    count_references,
    delete_all_references,
    delete_reference,
    edit_reference,
    restore_batch,
)
from tests.factories import RemoteIdFactory, make_reference
from tests.html import text_of

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def hx(target):
    return {**HX, "HTTP_HX_TARGET": target}


def list_url(world, entity="orders", integration=None):
    integration = integration or world.integration
    return f"/t/{integration.tenant.slug}/integrations/{integration.pk}/references/{entity}/"


def record_url(world, record, action="", entity="orders"):
    return f"{list_url(world, entity)}{record.local_id}/{action + '/' if action else ''}"


def target_of(world, record):
    row = RemoteId.objects.filter(record=record, connection=world.erp).first()
    return row and row.remote_id


# --------------------------------------------------------------------------- the list


class TestList:
    def test_shows_source_and_target_side_by_side_with_platform_names(self, admin_client, world):
        record = make_reference(
            world.integration, source_id="5001", target_id="INV-1", source_ref="#1"
        )

        page = admin_client.get(list_url(world)).text

        assert "Shopify" in page and "Fortnox" in page
        assert "5001" in page and "INV-1" in page and "#1" in page
        assert f'href="/t/acme/records/{record.local_id}/"' in page
        assert 'role="tablist"' in page
        for tab in ("Articles", "Customers", "Orders", "Stock"):
            assert tab in page

    def test_unlinked_rows_say_what_the_next_sync_does(self, admin_client, world):
        make_reference(world.integration, source_id="5002")

        page = admin_client.get(list_url(world)).text

        assert 'class="unlinked"' in page
        assert "the next sync creates a new record for it in Fortnox" in page

    def test_empty_tab_says_what_to_do(self, admin_client, world):
        page = admin_client.get(list_url(world, "stock")).text

        assert "No stock references yet" in page
        assert "import a CSV" in page

    def test_linked_filter(self, admin_client, world):
        make_reference(world.integration, source_id="LINKED-1", target_id="T1")
        make_reference(world.integration, source_id="LONELY-1")

        linked = admin_client.get(list_url(world) + "?linked=linked").text
        unlinked = admin_client.get(list_url(world) + "?linked=unlinked").text

        assert "LINKED-1" in linked and "LONELY-1" not in linked
        assert "LONELY-1" in unlinked and "LINKED-1" not in unlinked

    def test_search_matches_any_id_or_ref_and_says_which_side_matched(self, admin_client, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1", target_ref="F-77")
        make_reference(world.integration, source_id="6001", target_id="INV-2")

        page = admin_client.get(list_url(world) + "?q=F-77").text
        # The page's random CSRF token may contain any four digits: look at the table only.
        table = page[page.index("<table") :]

        assert "5001" in table and "6001" not in table
        assert "matched target ref" in page

    def test_search_puts_exact_matches_first(self, world):
        make_reference(world.integration, source_id="12345", target_id="A")
        make_reference(world.integration, source_id="99", target_id="123")
        make_reference(world.integration, source_id="1234", target_id="B")

        rows = list(reference_rows(world.integration, "order", q="123"))

        assert rows[0].target_remote_id == "123"
        assert {row.remote_id for row in rows} == {"12345", "99", "1234"}

    def test_modified_after_and_sort(self, admin_client, world):
        old = make_reference(world.integration, source_id="OLD", target_id="T-OLD")
        Record.objects.filter(pk=old.pk).update(last_modified="2020-01-01T00:00:00Z")
        make_reference(world.integration, source_id="NEW", target_id="T-NEW")

        recent = admin_client.get(list_url(world) + "?modified_after=2024-01-01").text
        by_source = admin_client.get(list_url(world) + "?sort=source").text

        assert "NEW" in recent and "T-OLD" not in recent
        assert by_source.index("NEW") < by_source.index("OLD")

    def test_invalid_filter_values_are_ignored(self, admin_client, world):
        make_reference(world.integration, source_id="5001", target_id="T")

        response = admin_client.get(list_url(world) + "?linked=maybe&modified_after=nope&page=x")

        assert response.status_code == 200
        assert "5001" in response.text

    def test_pages_without_counting_everything(self, admin_client, world):
        for n in range(30):
            make_reference(world.integration, source_id=f"S{n:03d}", target_id=f"T{n:03d}")

        first = admin_client.get(list_url(world) + "?per_page=25").text
        second = admin_client.get(list_url(world) + "?per_page=25&page=2").text

        assert "Showing 1–25 of 30" in first
        assert "page=2" in first
        assert "Showing 26–30 of 30" in second
        assert 'rel="prev"' in second and 'rel="next"' not in second

    @pytest.mark.parametrize("sort", ["-modified", "modified", "source", "-source"])
    def test_next_and_previous_walk_every_row_once_in_order(self, admin_client, world, sort):
        for n in range(60):
            make_reference(world.integration, source_id=f"S{n:03d}", target_id=f"T{n:03d}")
        expected = [row.remote_id for row in reference_rows(world.integration, "order", sort=sort)]

        url, pages = list_url(world) + f"?sort={sort}&per_page=25", []
        while url:
            response = admin_client.get(url)
            pages.append((url, [row.remote_id for row in response.context["page"].rows]))
            url = response.context["next_url"]

        assert [source for _, page in pages for source in page] == expected
        assert [len(page) for _, page in pages] == [25, 25, 10]
        assert "after=" in pages[1][0] and "page=2" in pages[1][0]
        # And back: each "Previous" shows exactly the page before.
        response = admin_client.get(pages[2][0])
        for _, page in reversed(pages[:2]):
            response = admin_client.get(response.context["prev_url"])
            assert [row.remote_id for row in response.context["page"].rows] == page
        assert "Showing 1–25 of 60" in response.text
        assert response.context["prev_url"] == ""

    @pytest.mark.parametrize("sort", ["-modified", "modified", "source", "-source"])
    @pytest.mark.parametrize("linked", ["unlinked", "lost", "never"])
    def test_the_unlinked_filters_page_every_unlinked_row_once_wherever_they_lie(
        self, admin_client, world, sort, linked
    ):
        """The unlinked rows are the oldest (the end of newest-first) and sort first by id;
        the filters read the kept unlinked rows, and Next seeks in them."""
        unlinked = []
        for n in range(15):
            record = make_reference(world.integration, source_id=f"U{n:03d}", target_id=f"X{n}")
            delete_reference(world.integration, record, world.actor)  # lost
            unlinked.append(record.pk)
        for n in range(15, 45):
            unlinked.append(make_reference(world.integration, source_id=f"U{n:03d}").pk)
        for n in range(40):
            make_reference(world.integration, source_id=f"V{n:03d}", target_id=f"T{n:03d}")
        mark_changed(world.tenant, unlinked, world.actor, at=datetime(2020, 1, 1, tzinfo=UTC))
        # Expected, from the records themselves: which are lost, and each sort's order.
        rows = [
            (record.last_modified, record.local_id, f"U{n:03d}")
            for n, record in enumerate(Record.objects.get(pk=pk) for pk in unlinked)
            if linked == "unlinked" or (n < 15) == (linked == "lost")
        ]
        expected = [source for *_, source in sorted(rows, key=lambda row: row[:2])]
        if sort in ("source", "-source"):
            expected = sorted(expected)
        if sort.startswith("-"):
            expected.reverse()

        url, pages = list_url(world) + f"?linked={linked}&sort={sort}&per_page=25", []
        while url and len(pages) < 5:
            response = admin_client.get(url)
            pages.append([row.remote_id for row in response.context["page"].rows])
            url = response.context["next_url"]

        assert [source for page in pages for source in page] == expected
        assert len(expected) == {"unlinked": 45, "lost": 15, "never": 30}[linked]

    def test_next_page_neither_repeats_nor_skips_when_rows_arrive_meanwhile(
        self, admin_client, world
    ):
        for n in range(30):
            make_reference(world.integration, source_id=f"S{n:03d}", target_id=f"T{n:03d}")
        first = admin_client.get(list_url(world) + "?per_page=25")
        seen = [row.remote_id for row in first.context["page"].rows]

        # Someone adds a reference (the newest, so the top of page 1) before "Next".
        make_reference(world.integration, source_id="NEW", target_id="T-NEW")
        second = admin_client.get(first.context["next_url"])

        rest = [row.remote_id for row in second.context["page"].rows]
        assert rest == ["S004", "S003", "S002", "S001", "S000"]  # OFFSET would repeat S005
        assert not set(rest) & set(seen)
        assert "Showing 26–30 of" in second.text

    @pytest.mark.parametrize("position", ["garbage", "W10", "WyJzb3VyY2UiLCJ4IiwxXQ"])
    def test_a_foreign_or_broken_position_falls_back_to_the_page_number(
        self, admin_client, world, position
    ):
        # "W10" is [], the last one a position of another sort (source).
        for n in range(30):
            make_reference(world.integration, source_id=f"S{n:03d}", target_id=f"T{n:03d}")

        response = admin_client.get(list_url(world) + f"?per_page=25&page=2&after={position}")

        assert response.status_code == 200
        assert [row.remote_id for row in response.context["page"].rows][0] == "S004"
        assert "Showing 26–30 of 30" in response.text

    def test_search_results_page_by_number(self, admin_client, world):
        for n in range(30):
            make_reference(world.integration, source_id=f"S{n:03d}", target_id=f"T{n:03d}")

        response = admin_client.get(list_url(world) + "?q=S0&per_page=25")

        assert "after=" not in response.context["next_url"]
        assert "page=2" in response.context["next_url"]

    def test_htmx_search_renders_the_table_and_pushes_the_clean_url(self, admin_client, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = admin_client.get(
            list_url(world) + "?q=5001&linked=all&modified_after=&sort=-modified",
            **hx("ref-table"),
        )

        assert response.status_code == 200
        assert response.text.lstrip().startswith('<div id="ref-table"')
        assert "<html" not in response.text
        assert 'id="ref-tabs" hx-swap-oob="true"' in response.text
        assert response["HX-Push-Url"] == list_url(world) + "?q=5001"

    def test_htmx_tab_switch_renders_the_page_area(self, admin_client, world):
        response = admin_client.get(list_url(world, "customers"), **hx("ref-page"))

        assert response.text.lstrip().startswith('<div id="ref-page"')
        assert "<html" not in response.text
        assert response["HX-Push-Url"] == list_url(world, "customers")

    def test_entity_the_integration_does_not_sync_is_404(self, admin_client, world):
        world.integration.entity_types = ["order"]
        world.integration.save()

        assert admin_client.get(list_url(world, "stock")).status_code == 404
        assert admin_client.get(list_url(world, "invoices")).status_code == 404

    def test_needs_login(self, client, world):
        response = client.get(list_url(world))
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")

    def test_page_one_takes_five_queries_however_many_rows(self, admin_client, world):
        """Session, user, membership, the integration with its kept counts and flags, rows."""

        def queries():
            # The first request settles what the factories left behind (they write past the
            # engine, so the kept counts are recounted) and fills the connection-name cache.
            assert admin_client.get(list_url(world)).status_code == 200
            with CaptureQueriesContext(connection) as captured:
                assert admin_client.get(list_url(world)).status_code == 200
            return len(captured)

        for n in range(3):
            make_reference(world.integration, source_id=f"A{n}", target_id=f"B{n}")
        make_reference(world.integration, source_id="UNLINKED")
        assert queries() == 5
        for n in range(3, 60):
            make_reference(world.integration, source_id=f"A{n}", target_id=f"B{n}")
        make_reference(world.integration, source_id="UNLINKED-2")
        assert queries() == 5

    def test_a_page_showing_lost_links_takes_one_query_more(self, admin_client, world):
        """The lost-link notes (who removed the target id, when, and whether it is free) are
        one query for the whole page, only when the page shows an unlinked row of a tab
        that has lost links."""

        def queries():
            assert admin_client.get(list_url(world)).status_code == 200
            with CaptureQueriesContext(connection) as captured:
                page = admin_client.get(list_url(world))
            assert "it was INV-0" in page.text
            return len(captured)

        lost = make_reference(world.integration, source_id="A0", target_id="INV-0")
        delete_reference(world.integration, lost, world.actor)
        assert queries() == 6
        for n in range(1, 40):
            record = make_reference(world.integration, source_id=f"A{n}", target_id=f"INV-{n}")
            delete_reference(world.integration, record, world.actor)
        assert queries() == 6


class TestSelectors:
    def test_filterset_gives_the_same_rows_as_the_selector(self, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")
        make_reference(world.integration, source_id="5002")

        filterset = ReferenceFilterSet(
            {"q": " 500 ", "linked": "unlinked"}, integration=world.integration, record_type="order"
        )

        assert filterset.params["q"] == "500"
        assert [row.remote_id for row in filterset.qs] == ["5002"]
        assert list(filterset.qs) == list(
            reference_rows(world.integration, "order", q="500", linked="unlinked")
        )

    def test_rows_of_other_tenants_and_connections_never_show(self, world):
        make_reference(world.other_integration, source_id="5001", target_id="X")
        RemoteIdFactory(
            record__tenant=world.tenant, connection__tenant=world.tenant, remote_id="5001"
        )

        assert list(reference_rows(world.integration, "order")) == []

    def test_capped_count_is_exact_below_the_cap(self, world):
        for n in range(5):
            make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}")

        rows = reference_rows(world.integration, "order")

        assert capped_count(rows).value == 5
        assert capped_count(rows).exact
        capped = capped_count(rows, cap=3)
        assert not capped.exact and capped.value >= 3


# ------------------------------------------------------------------------------- add


class TestAdd:
    def test_form_opens_in_place(self, support_client, world):
        response = support_client.get(list_url(world) + "add/", **hx("ref-add"))

        assert response.status_code == 200
        assert 'name="source_id"' in response.text
        assert "Fortnox id" in response.text

    def test_add_puts_the_new_row_on_top_highlighted(self, support_client, world):
        make_reference(world.integration, source_id="OLDER", target_id="T-OLD")

        response = support_client.post(
            list_url(world) + "add/",
            {"source_id": " 5001 ", "source_ref": "#1", "target_id": "INV-1", "target_ref": ""},
            **hx("ref-add"),
        )

        assert response.status_code == 200
        assert response["HX-Retarget"] == "#ref-table"
        assert 'class=" row-new"' in response.text
        assert response.text.index("5001") < response.text.index("OLDER")
        assert "Linked 5001 to INV-1." in response.text
        record = RemoteId.objects.get(connection=world.shop, remote_id="5001").record
        assert target_of(world, record) == "INV-1"
        assert AuditEntry.objects.get(record=record).actor == "user/sven"

    def test_conflict_names_the_holder_and_links_to_it_and_writes_nothing(
        self, support_client, world
    ):
        holder = make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = support_client.post(
            list_url(world) + "add/",
            {"source_id": "5002", "target_id": "INV-1"},
            **hx("ref-add"),
        )

        assert response.status_code == 422
        assert "Fortnox id INV-1 is already linked to Shopify id 5001." in response.text
        assert f'href="/t/acme/records/{holder.local_id}/">Open it' in response.text
        assert 'id="add-target_id-error"' in response.text
        assert not RemoteId.objects.filter(remote_id="5002").exists()

    def test_empty_id_is_an_error_next_to_the_field(self, support_client, world):
        response = support_client.post(
            list_url(world) + "add/", {"source_id": "  ", "target_id": "X"}, **hx("ref-add")
        )

        assert response.status_code == 422
        assert "Shopify id is required." in response.text
        assert not Record.objects.exists()

    def test_without_htmx_redirects_back_to_the_list(self, support_client, world):
        response = support_client.post(
            list_url(world) + "add/", {"source_id": "5001", "target_id": "INV-1"}
        )

        assert response.status_code == 302
        assert response["Location"] == list_url(world)
        assert "?add=1" in support_client.get(list_url(world) + "add/")["Location"]
        assert 'id="add-source_id"' in support_client.get(list_url(world) + "?add=1").text


# ------------------------------------------------------------------------------ edit


class TestEdit:
    def test_edit_row_carries_the_version(self, support_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = support_client.get(record_url(world, record, "edit"), **HX)

        assert 'class="editing"' in response.text
        assert f'name="version" value="{record.version}"' in response.text
        assert 'value="INV-1"' in response.text
        assert 'data-action="save"' in response.text and "data-cancel" in response.text

    def test_save_changes_the_target_and_returns_the_row(self, support_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = support_client.post(
            record_url(world, record, "edit"),
            {"source_id": "5001", "target_id": "INV-9", "version": record.version},
            **HX,
        )

        assert response.status_code == 200
        assert "INV-9" in response.text and 'class="editing"' not in response.text
        assert target_of(world, record) == "INV-9"
        assert AuditEntry.objects.get(record=record, action="edit").before["target_id"] == "INV-1"

    def test_link_an_unlinked_row(self, support_client, world):
        record = make_reference(world.integration, source_id="5001")

        support_client.post(
            record_url(world, record, "edit"),
            {"source_id": "5001", "target_id": "INV-1", "version": record.version},
            **HX,
        )

        assert target_of(world, record) == "INV-1"

    def test_conflict_is_shown_next_to_the_field(self, support_client, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")
        record = make_reference(world.integration, source_id="5002", target_id="INV-2")

        response = support_client.post(
            record_url(world, record, "edit"),
            {"source_id": "5002", "target_id": "INV-1", "version": record.version},
            **HX,
        )

        assert response.status_code == 409
        assert "Fortnox id INV-1 is already linked to Shopify id 5001." in response.text
        assert "-target_id-error" in response.text
        assert target_of(world, record) == "INV-2"

    def test_stale_edit_shows_who_changed_it_and_the_current_values(self, support_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")
        opened = record.version
        edit_reference(
            world.integration,
            record,
            ReferenceInput(source_id="5001", target_id="INV-2"),
            world.actor,
            version=opened,
        )

        response = support_client.post(
            record_url(world, record, "edit"),
            {"source_id": "5001", "target_id": "INV-3", "version": opened},
            **HX,
        )

        assert response.status_code == 409
        assert 'changed by <span title="user/anna">anna</span>' in response.text
        assert "INV-2" in response.text  # the current value
        assert 'value="INV-3"' in response.text  # what the user typed is kept
        assert target_of(world, record) == "INV-2"

    def test_cancel_returns_the_plain_row(self, support_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = support_client.get(record_url(world, record), **HX)

        assert response.text.lstrip().startswith('<tbody class="ref-group"')
        assert 'data-action="edit"' in response.text

    def test_the_row_opened_as_a_page_shows_the_reference_in_its_table(self, support_client, world):
        # Not a bare <tbody> without <title>, <main> or <h1>.
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = support_client.get(record_url(world, record))

        assert response.status_code == 302
        assert response["Location"] == list_url(world) + "?q=5001"


# ---------------------------------------------------------------------------- delete


class TestDelete:
    def test_confirm_says_both_records_stay_and_the_next_sync_duplicates(self, admin_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")

        text = admin_client.get(record_url(world, record, "delete"), **HX).text

        assert "Both records stay" in text
        assert "next sync of Shopify order" in text
        assert "new order in Fortnox" in text

    def test_delete_removes_the_target_and_offers_undo(self, admin_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = admin_client.post(
            record_url(world, record, "delete"), {"version": record.version}, **HX
        )

        assert response.status_code == 200
        assert target_of(world, record) is None
        assert Record.objects.filter(pk=record.pk).exists()
        assert "Not linked" in response.text
        batch = Batch.objects.get(kind="delete")
        assert f"/t/acme/batches/{batch.pk}/restore/" in response.text
        assert ">Undo</button>" in response.text

    def test_undo_restores_it(self, admin_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")
        batch = delete_reference(world.integration, record, world.actor)

        response = admin_client.post(
            f"/t/acme/batches/{batch.pk}/restore/", {"tab": "orders"}, **hx("ref-table")
        )

        assert response.status_code == 200
        assert target_of(world, record) == "INV-1"
        assert "Restored 1 reference." in response.text
        assert "INV-1" in response.text

    def test_stale_delete_is_refused(self, admin_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = admin_client.post(
            record_url(world, record, "delete"), {"version": record.version - 1 or 99}, **HX
        )

        assert "Changed by" in response.text
        assert target_of(world, record) == "INV-1"

    def test_support_sees_no_delete_and_is_refused(self, support_client, world):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")

        page = support_client.get(list_url(world)).text

        assert "Delete" not in page.replace("Delete all", "")
        assert "Danger zone" not in page
        assert support_client.get(record_url(world, record, "delete"), **HX).status_code == 403
        assert support_client.post(record_url(world, record, "delete"), **HX).status_code == 403
        assert target_of(world, record) == "INV-1"


# ------------------------------------------------------------------------ delete all


class TestDeleteAll:
    def test_confirm_page_shows_scope_count_and_risk(self, admin_client, world):
        for n in range(3):
            make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}")
        make_reference(world.integration, source_id="UNLINKED")

        page = admin_client.get(list_url(world) + "delete-all/").text

        assert "Delete all 3 order references?" in page
        assert "Shopify → Fortnox" in page and "Orders" in page
        assert "duplicates" in page
        assert 'data-confirm-text="orders"' in page
        assert "disabled>Delete 3 references" in page

    def test_wrong_confirmation_deletes_nothing(self, admin_client, world):
        make_reference(world.integration, source_id="S", target_id="T")

        response = admin_client.post(list_url(world) + "delete-all/", {"confirm": "order"})

        assert response.status_code == 422
        assert "Type orders exactly to confirm" in response.text
        assert count_references(world.integration, "order") == 1

    def test_get_never_deletes(self, admin_client, world):
        make_reference(world.integration, source_id="S", target_id="T")
        admin_client.get(list_url(world) + "delete-all/?confirm=orders")
        assert count_references(world.integration, "order") == 1

    def test_delete_all_then_banner_restores(self, admin_client, world):
        for n in range(3):
            make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}")
        make_reference(world.integration, "article", source_id="A", target_id="B")

        response = admin_client.post(list_url(world) + "delete-all/", {"confirm": "orders"})

        assert response.status_code == 302
        assert count_references(world.integration, "order") == 0
        assert count_references(world.integration, "article") == 1
        page = admin_client.get(response["Location"]).text
        assert "Restore 3 references" in page
        batch = Batch.objects.get(kind="delete_all")
        response = admin_client.post(f"/t/acme/batches/{batch.pk}/restore/")
        assert response.status_code == 302
        assert count_references(world.integration, "order") == 3
        assert "Restore 3 references" not in admin_client.get(list_url(world)).text

    def test_support_cannot(self, support_client, world):
        make_reference(world.integration, source_id="S", target_id="T")
        batch = delete_all_references(world.integration, "order", world.actor)

        assert support_client.get(list_url(world) + "delete-all/").status_code == 403
        assert (
            support_client.post(list_url(world) + "delete-all/", {"confirm": "orders"}).status_code
            == 403
        )
        assert support_client.post(f"/t/acme/batches/{batch.pk}/restore/").status_code == 403
        assert "Restore 1 reference" not in support_client.get(list_url(world)).text

    def test_restore_conflict_is_explained(self, admin_client, world):
        record = make_reference(world.integration, source_id="S", target_id="T")
        batch = delete_reference(world.integration, record, world.actor)
        add_reference(
            world.integration,
            "order",
            ReferenceInput(source_id="OTHER", target_id="T"),
            world.actor,
        )

        response = admin_client.post(
            f"/t/acme/batches/{batch.pk}/restore/", {"tab": "orders"}, **hx("ref-table")
        )

        assert "Cannot restore" in response.text
        assert target_of(world, record) is None


# --------------------------------------------------------------------------- history


class TestHistory:
    def test_row_expands_to_its_audit_trail(self, support_client, world):
        record = add_reference(
            world.integration,
            "order",
            ReferenceInput(source_id="5001", target_id="INV-1"),
            world.actor,
        )
        edit_reference(
            world.integration,
            record,
            ReferenceInput(source_id="5001", target_id="INV-2"),
            world.actor,
            version=record.version,
        )

        page = support_client.get(record_url(world, record, "history"), **HX).text
        text = text_of(page)

        assert "Added reference" in text and "Edited reference" in text
        assert 'title="user/anna">anna<' in page  # the name, with the {type}/{id} on hover
        assert "Linked Shopify 5001 to Fortnox INV-1" in text
        assert "Fortnox id INV-1 → INV-2" in text
        # The changed values are marked up, the old one apart from the new.
        assert (
            '<span class="val before">INV-1</span> → <span class="val after">INV-2</span>' in page
        )
        assert text.count("Revert to this") == 1  # to INV-1; INV-2 is the current value
        assert "{" not in text  # no raw JSON

    def test_a_revert_is_logged_as_reverted_with_what_it_changed(self, support_client, world):
        record = add_reference(
            world.integration, "order", ReferenceInput("5001", "INV-1"), world.actor
        )
        record = edit_reference(
            world.integration,
            record,
            ReferenceInput("5001", "INV-2", target_ref="B"),
            world.actor,
            version=record.version,
        )
        first = AuditEntry.objects.get(record=record, action="add")
        support_client.post(
            record_url(world, record, f"history/{first.pk}/revert"),
            {"version": record.version},
            **HX,
        )

        text = text_of(support_client.get(record_url(world, record, "history"), **HX).text)

        assert "Reverted reference Fortnox id INV-2 → INV-1 ; Fortnox ref B → none" in text

    def test_shows_the_delete_all_and_restore_that_took_and_gave_back_its_id(
        self, support_client, world
    ):
        record = make_reference(world.integration, source_id="5001", target_id="INV-1")
        make_reference(world.integration, source_id="5002", target_id="INV-2")
        batch = delete_all_references(world.integration, "order", world.actor)
        restore_batch(batch, world.actor)
        untouched = make_reference(world.integration, source_id="5003", target_id="INV-3")

        text = text_of(support_client.get(record_url(world, record, "history"), **HX).text)
        assert "Deleted all 2 order references of Shopify → Fortnox" in text
        assert "Restored 2 references deleted by anna" in text and "just now (delete all)" in text
        assert "Revert to this" not in text  # a batch is undone with Restore, not from here

        other = support_client.get(record_url(world, untouched, "history"), **HX).text
        assert "Deleted all references" not in other

    def test_revert_to_a_past_value(self, support_client, world):
        record = add_reference(
            world.integration,
            "order",
            ReferenceInput(source_id="5001", target_id="INV-1"),
            world.actor,
        )
        record = edit_reference(
            world.integration,
            record,
            ReferenceInput(source_id="5001", target_id="INV-2"),
            world.actor,
            version=record.version,
        )
        first = AuditEntry.objects.get(record=record, action="add")

        response = support_client.post(
            record_url(world, record, f"history/{first.pk}/revert"),
            {"version": record.version},
            **HX,
        )

        assert response.status_code == 200
        assert target_of(world, record) == "INV-1"

    def test_revert_that_would_conflict_shows_the_message(self, support_client, world):
        record = add_reference(
            world.integration,
            "order",
            ReferenceInput(source_id="5001", target_id="INV-1"),
            world.actor,
        )
        record = edit_reference(
            world.integration,
            record,
            ReferenceInput(source_id="5001", target_id="INV-2"),
            world.actor,
            version=record.version,
        )
        add_reference(
            world.integration,
            "order",
            ReferenceInput(source_id="7", target_id="INV-1"),
            world.actor,
        )
        first = AuditEntry.objects.get(record=record, action="add")

        response = support_client.post(
            record_url(world, record, f"history/{first.pk}/revert"),
            {"version": record.version},
            **HX,
        )

        assert response.status_code == 409
        assert "Fortnox id INV-1 is already linked to Shopify id 7." in response.text
        assert target_of(world, record) == "INV-2"


# ------------------------------------------------------------------- another tenant


class TestAnotherTenant:
    def test_every_url_is_404_for_another_tenants_objects(self, client, world):
        mine = make_reference(world.integration, source_id="5001", target_id="INV-1")
        entry = AuditEntry.objects.create(
            tenant=world.tenant, actor="user/anna", action="add", record=mine
        )
        batch = delete_all_references(world.integration, "order", world.actor)
        client.force_login(world.outsider)
        base = list_url(world)
        theirs = list_url(world, integration=world.other_integration)
        # The outsider's own tenant slug with our integration, record, batch: 404 too.
        foreign_integration = f"/t/other/integrations/{world.integration.pk}/references/orders/"

        gets = [
            base,
            base + "add/",
            base + "delete-all/",
            f"{base}{mine.local_id}/",
            f"{base}{mine.local_id}/edit/",
            f"{base}{mine.local_id}/delete/",
            f"{base}{mine.local_id}/history/",
            foreign_integration,
            foreign_integration + "delete-all/",
            f"{theirs}{mine.local_id}/",
            f"{theirs}{mine.local_id}/edit/",
        ]
        posts = [
            base + "add/",
            base + "delete-all/",
            f"{base}{mine.local_id}/edit/",
            f"{base}{mine.local_id}/delete/",
            f"{base}{mine.local_id}/history/{entry.pk}/revert/",
            f"/t/acme/batches/{batch.pk}/restore/",
            f"/t/other/batches/{batch.pk}/restore/",
            foreign_integration + "add/",
            f"{theirs}{mine.local_id}/delete/",
        ]
        for url in gets:
            assert client.get(url).status_code == 404, url
        for url in posts:
            assert client.post(url, {"confirm": "orders"}).status_code == 404, url
        assert Batch.objects.get(pk=batch.pk).restored_at is None


def test_tenant_home_links_to_the_references_page(admin_client, world):
    page = admin_client.get("/t/acme/").text
    assert f'href="{list_url(world)}"' in page


def test_restore_url_opened_without_javascript_asks_first(admin_client, world):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    batch = delete_reference(world.integration, record, world.actor)

    page = admin_client.get(f"/t/acme/batches/{batch.pk}/restore/")

    assert page.status_code == 200
    assert "Restore 1 reference?" in page.text
    assert target_of(world, record) is None


def test_row_pages_work_without_javascript(admin_client, world):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")

    for action, expected in [
        ("edit", "Edit order reference"),
        ("delete", "Delete the reference"),
        ("history", "History of order"),
    ]:
        response = admin_client.get(record_url(world, record, action))
        assert response.status_code == 200, action
        assert expected in response.text, action
        assert "<html" in response.text

    response = admin_client.post(
        record_url(world, record, "edit"),
        {"source_id": "5001", "target_id": "INV-2", "version": record.version},
    )
    assert response.status_code == 302
    assert target_of(world, record) == "INV-2"


def test_the_list_says_it_varies_on_htmx_so_back_never_shows_a_bare_fragment(support_client, world):
    url = f"/t/acme/integrations/{world.integration.pk}/references/orders/"
    for headers in ({}, {"HX-Request": "true", "HX-Target": "ref-table"}):
        vary = support_client.get(url, headers=headers)["Vary"]
        assert "HX-Request" in vary and "HX-Target" in vary


def test_a_back_button_cache_miss_gets_the_full_page_not_the_table_alone(support_client, world):
    make_reference(world.integration, source_id="5001", target_id="INV-1")
    url = list_url(world)
    swap = support_client.get(url, headers={"HX-Request": "true", "HX-Target": "ref-table"})
    restore = support_client.get(
        url,
        headers={
            "HX-Request": "true",
            "HX-Target": "ref-table",
            "HX-History-Restore-Request": "true",
        },
    )

    assert "<html" not in swap.text and "5001" in swap.text
    assert "<html" in restore.text and "5001" in restore.text


def test_the_by_column_names_people_and_connections_as_they_are_known(support_client, world):
    from records.models import Record

    linked = make_reference(world.integration, source_id="5001", target_id="INV-1")
    Record.objects.filter(pk=linked.pk).update(
        last_modified_by=f"connection/{world.erp.connection_id}"
    )
    make_reference(world.integration, source_id="5002")

    page = support_client.get(
        f"/t/acme/integrations/{world.integration.pk}/references/orders/"
    ).content.decode()

    assert f'title="connection/{world.erp.connection_id}">Fortnox</span>' in page
    assert 'title="system/tests">tests (system)</span>' in page


def test_the_tab_and_the_table_footer_agree_and_say_what_they_count(support_client, world):
    make_reference(world.integration, source_id="5001", target_id="INV-1")
    make_reference(world.integration, source_id="5002", target_id="INV-2")
    make_reference(world.integration, source_id="5003")
    url = f"/t/acme/integrations/{world.integration.pk}/references/orders/"

    page = support_client.get(url).content.decode()

    assert 'title="2 linked references">2' in page
    assert 'of 3 <span class="muted">(2 linked · 1 unlinked)</span>' in " ".join(page.split())
    filtered = support_client.get(url + "?linked=linked").content.decode()
    assert "of 2" in filtered and "(2 linked" not in filtered


def test_ids_with_spaces_are_trimmed_and_the_toast_says_so(admin_client, world):
    url = f"/t/acme/integrations/{world.integration.pk}/references/orders/add/"
    response = admin_client.post(
        url,
        {"source_id": " 5009999903 ", "target_id": "INV-9", "source_ref": "", "target_ref": ""},
        follow=True,
    )
    page = response.content.decode()
    assert "Linked 5009999903 to INV-9. Saved as 5009999903 (spaces removed)." in page


def test_url_parameters_that_cannot_be_used_are_named_with_what_is_shown_instead(
    support_client, world
):
    make_reference(world.integration, source_id="5001", target_id="INV-1")
    url = f"/t/acme/integrations/{world.integration.pk}/references/orders/"

    page = support_client.get(url + "?modified_after=notadate&per_page=100000").content.decode()

    assert "modified_after=notadate is not valid: not filtered by it." in page
    assert "per_page=100000 is not one of 25, 50, 100: showing 50." in page
    assert "5001" in page
    assert "is not valid" not in support_client.get(url).content.decode()


def test_a_reference_a_sync_made_can_be_reverted_to_before_its_first_edit(admin_client, world):
    from records.models import AuditEntry
    from references.services import ReferenceInput, edit_reference

    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    record = edit_reference(
        world.integration, record, ReferenceInput("5001", "INV-2"), world.actor, version=1
    )
    base = f"/t/acme/integrations/{world.integration.pk}/references/orders/{record.local_id}/"
    history = admin_client.get(base + "history/", headers={"HX-Request": "true"}).content.decode()
    entry = AuditEntry.objects.get(record=record, action="edit")
    assert f"history/{entry.pk}/revert/?to=before" in history

    admin_client.post(
        base + f"history/{entry.pk}/revert/?to=before",
        {"version": record.version},
        headers={"HX-Request": "true"},
    )

    target = record.remote_ids.get(connection=world.erp)
    assert target.remote_id == "INV-1"
    assert AuditEntry.objects.filter(record=record, action="revert").exists()

"""The Records pages over HTTP: list filters and search, the record page, custom data editing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from records.audit import Actor
from records.custom_data import CustomDataInput, set_custom_data
from records.models import AuditEntry, CustomData, Record
from tests.factories import (
    ConnectionFactory,
    CustomDataFactory,
    IntegrationFactory,
    RecordFactory,
    RemoteIdFactory,
    make_reference,
)
from tests.html import text_of

pytestmark = pytest.mark.django_db


def list_url(record_type="order", **params):
    from urllib.parse import urlencode

    query = f"?{urlencode(params)}" if params else ""
    return f"/t/acme/records/{record_type}/{query}"


def local_ids(response):
    return [record.local_id for record in response.context["records"]]


# --- list -------------------------------------------------------------------------------


def test_list_shows_records_of_the_type_newest_first_with_their_remote_ids(support_client, world):
    old = make_reference(world.integration, source_id="5001", target_id="INV-1")
    new = make_reference(world.integration, source_id="5002", source_ref="#1002")
    Record.objects.filter(pk=old.pk).update(last_modified=timezone.now() - timedelta(days=1))
    make_reference(world.integration, "customer", source_id="C1")

    response = support_client.get(list_url())

    assert response.status_code == 200
    assert local_ids(response) == [new.local_id, old.local_id]
    assert "INV-1" in response.text and "#1002" in response.text
    assert f'href="/t/acme/records/{new.local_id}/"' in response.text


def test_tabs_show_the_four_types_and_any_other_type_on_the_tenant(support_client, world):
    RecordFactory(tenant=world.tenant, record_type="invoice")
    RecordFactory(tenant=world.other_tenant, record_type="shipment")

    response = support_client.get(list_url())

    tabs = [tab.record_type for tab in response.context["tabs"]]
    assert tabs == ["article", "customer", "order", "stock", "invoice"]
    assert 'href="/t/acme/records/invoice/"' in response.text
    assert "shipment" not in response.text


def test_records_index_opens_the_first_tab(support_client, world):
    response = support_client.get("/t/acme/records/")
    assert response.status_code == 302
    assert response["Location"] == "/t/acme/records/article/"


def test_a_malformed_record_type_is_404(support_client, world):
    assert support_client.get("/t/acme/records/Not-A-Type/").status_code == 404


def test_filter_by_connection_that_knows_the_record(support_client, world):
    linked = make_reference(world.integration, source_id="1", target_id="A")
    make_reference(world.integration, source_id="2")

    response = support_client.get(list_url(known_to=world.erp.pk))

    assert local_ids(response) == [linked.local_id]


def test_filter_by_connection_that_does_not_know_the_record(support_client, world):
    make_reference(world.integration, source_id="1", target_id="A")
    unlinked = make_reference(world.integration, source_id="2")

    response = support_client.get(list_url(unknown_to=world.erp.pk))

    assert local_ids(response) == [unlinked.local_id]


def test_another_tenants_connection_is_not_a_filter_choice(support_client, world):
    foreign = ConnectionFactory(tenant=world.other_tenant)
    make_reference(world.integration, source_id="1")

    response = support_client.get(list_url(known_to=foreign.pk))

    assert "Select a valid choice" in response.text
    assert foreign.name not in response.text


def test_filter_modified_at_or_after(support_client, world):
    recent = make_reference(world.integration, source_id="1")
    old = make_reference(world.integration, source_id="2")
    Record.objects.filter(pk=old.pk).update(
        last_modified=timezone.make_aware(timezone.datetime(2024, 1, 1, 12, 0))
    )

    response = support_client.get(list_url(modified_after="2024-06-01T00:00"))
    assert local_ids(response) == [recent.local_id]

    response = support_client.get(list_url(modified_after="2024-01-01T12:00"))
    assert set(local_ids(response)) == {recent.local_id, old.local_id}


def test_an_invalid_date_is_shown_next_to_the_field(support_client, world):
    response = support_client.get(list_url(modified_after="yesterday-ish"))
    assert response.status_code == 200
    assert "Enter a valid date/time." in response.text


def test_filter_by_last_modified_by(support_client, world):
    mine = RecordFactory(tenant=world.tenant, last_modified_by="user/anna")
    RecordFactory(tenant=world.tenant, last_modified_by="system/sync")

    response = support_client.get(list_url(last_modified_by="user/anna"))

    assert local_ids(response) == [mine.local_id]


@pytest.mark.parametrize("how", ["local_id", "local_id_upper", "source_id", "target_ref"])
def test_search_finds_a_record_by_local_id_or_any_remote_id_or_ref(support_client, world, how):
    record = make_reference(
        world.integration, source_id="5001", target_id="INV-9", target_ref="Faktura 9"
    )
    make_reference(world.integration, source_id="5002", target_id="INV-8", target_ref="Faktura 8")
    query = {
        "local_id": record.local_id,
        "local_id_upper": record.local_id.upper(),
        "source_id": " 5001 ",
        "target_ref": "Faktura 9",
    }[how]

    response = support_client.get(list_url(q=query))

    assert local_ids(response) == [record.local_id]


def test_search_is_case_sensitive_for_remote_ids_and_says_so_when_nothing_matches(
    support_client, world
):
    make_reference(world.integration, source_id="abc-1")
    response = support_client.get(list_url(q="ABC-1"))
    assert local_ids(response) == []
    assert "No orders match these filters" in response.text
    assert "Clear the filters" in response.text


def test_search_does_not_find_another_tenants_record(support_client, world):
    make_reference(world.other_integration, source_id="5001")
    assert local_ids(support_client.get(list_url(q="5001"))) == []


def test_pages_fetch_one_row_more_instead_of_counting(support_client, world):
    records = [RecordFactory(tenant=world.tenant) for _ in range(30)]
    now = timezone.now()
    # Same timestamp everywhere: the order must still be stable (local id breaks ties).
    Record.objects.filter(pk__in=[r.pk for r in records]).update(last_modified=now)
    expected = sorted((r.local_id for r in records), reverse=True)

    first = support_client.get(list_url(per_page=25))
    second = support_client.get(list_url(per_page=25, page=2))

    assert local_ids(first) == expected[:25]
    assert first.context["has_next"] is True
    assert local_ids(second) == expected[25:]
    assert second.context["has_next"] is False
    assert 'rel="next"' in first.text and 'rel="prev"' in second.text
    assert "Showing 26–30" in second.text


def pager_link(response, rel):
    import html
    import re

    found = re.search(rf'href="([^"]*)" rel="{rel}"', response.text)
    return html.unescape(found.group(1)) if found else None


def test_next_and_previous_seek_from_the_rows_shown(support_client, world):
    records = [RecordFactory(tenant=world.tenant) for _ in range(60)]
    now = timezone.now()
    # Half share one timestamp: the local id must break the ties across page boundaries.
    Record.objects.filter(pk__in=[r.pk for r in records[:30]]).update(last_modified=now)
    expected = list(
        Record.objects.filter(tenant=world.tenant, record_type="order")
        .order_by("-last_modified", "-local_id")
        .values_list("local_id", flat=True)
    )

    pages, url = [], list_url(per_page=25)
    while url:
        response = support_client.get(url if url.startswith("/") else list_url() + url)
        pages.append((url, local_ids(response)))
        url = pager_link(response, "next")

    assert [local_id for _, page in pages for local_id in page] == expected
    assert "after=" in pages[1][0] and "page=2" in pages[1][0]
    last = support_client.get(list_url() + pages[2][0])
    back = support_client.get(list_url() + pager_link(last, "prev"))
    assert local_ids(back) == pages[1][1]
    first = support_client.get(list_url() + pager_link(back, "prev"))
    assert local_ids(first) == pages[0][1]
    assert "after=" not in pager_link(back, "prev") and "before=" not in pager_link(back, "prev")

    # A record changed meanwhile moves to the top; the next page neither repeats nor skips.
    page_one = support_client.get(list_url(per_page=25))
    Record.objects.filter(local_id=expected[-1]).update(last_modified=now + timedelta(hours=1))
    page_two = support_client.get(list_url() + pager_link(page_one, "next"))
    assert local_ids(page_two) == expected[25:50]


def test_an_unknown_page_size_falls_back_to_the_default(support_client, world):
    response = support_client.get(list_url(per_page=100000, page="x"))
    assert response.context["per_page"] == 50
    assert response.context["page"] == 1


def _list_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_list_takes_six_queries_however_many_records_it_shows(support_client, world):
    """Session, user, membership, the tenant's connections (both filters' choices, and which
    are sources), the records with their remote ids as JSON rows, the type tabs."""
    for index in range(3):
        make_reference(world.integration, source_id=f"a{index}", target_id=f"b{index}")
    assert _list_queries(support_client, list_url()) == 6
    for index in range(40):
        make_reference(world.integration, source_id=f"c{index}", target_id=f"d{index}")
    assert _list_queries(support_client, list_url()) == 6


def test_htmx_request_gets_only_the_table_and_the_full_page_otherwise(support_client, world):
    make_reference(world.integration, source_id="5001")
    partial = support_client.get(list_url(q="5001"), headers={"HX-Request": "true"})
    full = support_client.get(list_url(q="5001"))

    assert "<html" not in partial.text and "5001" in partial.text
    assert "<html" in full.text and 'id="records-table"' in full.text
    assert "HX-Request" in partial["Vary"]


def test_list_of_another_tenant_is_404(admin_client, world):
    assert admin_client.get("/t/other/records/order/").status_code == 404


# --- detail -----------------------------------------------------------------------------


def detail_url(record, suffix=""):
    return f"/t/{record.tenant.slug}/records/{record.local_id}/{suffix}"


@pytest.fixture
def record(world):
    record = make_reference(
        world.integration, source_id="5001", source_ref="#1001", target_id="INV-1"
    )
    record.data = {"orderNumber": 1001, "currency": "SEK"}
    record.save()
    return record


def test_record_page_shows_header_remote_ids_data_and_links_to_references(
    support_client, world, record
):
    outlet = ConnectionFactory(tenant=world.tenant, name="Outlet", connector__code="woo")
    RemoteIdFactory(record=record, connection=outlet, remote_id="wc-7", remote_ref="#7")

    response = support_client.get(detail_url(record))

    assert response.status_code == 200
    text = response.text
    assert f'data-copy="{record.local_id}"' in text
    assert '<time class="relative"' in text
    assert record.last_modified_by in text
    rows = response.context["remote_id_rows"]
    assert [row["remote"].connection.name for row in rows] == ["Fortnox", "Outlet", "Shopify"]
    for connection_ in (world.shop, world.erp, outlet):
        assert connection_.connection_id in text
    assert "wc-7" in text and "#1001" in text
    # Fortnox and Shopify are the two sides of one integration; Outlet is in none.
    assert [link["side"] for link in rows[0]["links"]] == ["target"]
    assert [link["side"] for link in rows[2]["links"]] == ["source"]
    assert rows[1]["links"] == []
    assert "In no integration" in text
    assert "&quot;orderNumber&quot;: 1001" in text


def test_record_page_links_to_the_references_page_with_the_remote_id(support_client, world, record):
    from django.urls import reverse

    base = reverse(
        "references:list",
        kwargs={"tenant_slug": "acme", "integration_id": world.integration.pk, "entity": "orders"},
    )
    response = support_client.get(detail_url(record))
    assert f'href="{base}?q=5001"' in response.text
    assert f'href="{base}?q=INV-1"' in response.text


def test_record_page_links_only_integrations_whose_source_knows_the_record(
    support_client, world, record
):
    # WooCommerce -> Fortnox shares the target, but WooCommerce does not know this record:
    # its References page has no row for it, so the record page must not link there.
    IntegrationFactory(tenant=world.tenant, target=world.erp, name="WooCommerce -> Fortnox")

    response = support_client.get(detail_url(record))

    links = [
        (link["integration"].name, link["side"])
        for row in response.context["remote_id_rows"]
        for link in row["links"]
    ]
    assert sorted(links) == [("Shopify -> Fortnox", "source"), ("Shopify -> Fortnox", "target")]


def test_record_page_groups_custom_data_by_connection_and_module(support_client, world, record):
    CustomDataFactory(record=record, module_id="x-support", key="note", value="call back")
    CustomDataFactory(
        record=record,
        connection=world.erp,
        module_id="fortnox-invoices",
        key="meta",
        type="json",
        value={"series": "B"},
    )

    response = support_client.get(detail_url(record))

    groups = response.context["custom_data_groups"]
    assert [g["connection"] for g in groups] == [None, world.erp]
    assert [m["module_id"] for m in groups[1]["modules"]] == ["fortnox-invoices"]
    assert groups[1]["modules"][0]["owned_by_connector"] is True
    text = response.text
    assert "|<wbr>x-support|<wbr>note" in text
    # The key shows the connection's name; the stored key (its hex id) is on hover and copied.
    assert '<span class="cd-connection">Fortnox</span>|<wbr>fortnox-invoices|<wbr>meta' in text
    assert f'title="{world.erp.connection_id}|fortnox-invoices|meta"' in text
    assert "{\n  &quot;series&quot;: &quot;B&quot;\n}" in text


def test_record_page_of_another_tenant_is_404(admin_client, world):
    theirs = make_reference(world.other_integration, source_id="5001")
    assert admin_client.get(f"/t/acme/records/{theirs.local_id}/").status_code == 404
    assert admin_client.get(f"/t/other/records/{theirs.local_id}/").status_code == 404


@pytest.mark.parametrize("who", ["support_client", "admin_client"])
def test_record_page_takes_five_queries_however_much_it_shows(who, request, world, record):
    """Session, user, membership, the record with its remote ids, custom data, integrations
    and connections (JSON rows), and its history. Admins' add form needs no query more."""
    client = request.getfixturevalue(who)

    def count():
        client.get(detail_url(record))  # fills the connection-name cache
        with CaptureQueriesContext(connection) as queries:
            assert client.get(detail_url(record)).status_code == 200
        return len(queries)

    set_custom_data(record, [CustomDataInput("x-a", "k0", "string", "v")], world.actor)
    assert count() == 5
    set_custom_data(
        record,
        [CustomDataInput(f"x-{i}", f"k{i}", "integer", str(i), world.erp) for i in range(10)],
        world.actor,
    )
    assert count() == 5


# --- history ----------------------------------------------------------------------------


def test_history_shows_the_records_changes_newest_first_with_before_and_after(
    support_client, world, record
):
    set_custom_data(record, [CustomDataInput("x-support", "note", "string", "one")], world.actor)
    set_custom_data(
        record, [CustomDataInput("x-support", "note", "string", "two")], Actor("user", "erik")
    )
    other = make_reference(world.integration, source_id="9999")
    set_custom_data(other, [CustomDataInput("x-support", "note", "string", "x")], world.actor)

    response = support_client.get(detail_url(record))

    history = response.context["history"]
    assert [entry.actor for entry in history] == ["user/erik", "user/anna"]
    assert history[0].before["value"] == "one" and history[0].after["value"] == "two"
    text = text_of(response.text)
    assert "Set custom data" in text
    assert "|x-support|note one → two" in text and "Set |x-support|note to one" in text
    assert '<span class="val before">one</span>' in response.text
    assert "&quot;" not in response.text.split('id="history"')[1]  # no raw JSON


def test_history_says_in_words_what_a_restore_and_an_api_id_change_did(
    support_client, world, record
):
    from records.services import update_record
    from references.services import delete_reference, restore_batch

    batch = delete_reference(world.integration, record, world.actor)
    restore_batch(batch, world.actor)
    api = ConnectionFactory(tenant=world.tenant, name="Warehouse API")
    record.refresh_from_db()
    update_record(
        record,
        api,
        Actor.for_connection(api),
        data={**record.data, "status": "packed"},
        remote_id="W1",
        remote_ref="",
        custom_data={},
    )

    text = text_of(support_client.get(detail_url(record)).text)

    assert "Set Warehouse API id W1" in text
    assert "status none → packed" in text
    assert "Restored the reference deleted by anna" in text and "just now (delete)" in text
    assert "Unlinked Shopify" in text


def test_history_includes_bulk_deletes_that_removed_the_records_ids(support_client, world, record):
    from references.services import delete_all_references

    delete_all_references(world.integration, "order", world.actor)

    response = support_client.get(detail_url(record))

    actions = [entry.action for entry in response.context["history"]]
    assert AuditEntry.Action.DELETE_ALL in actions


# --- custom data editing ----------------------------------------------------------------


def add(client, record, **data):
    payload = {"connection": "", "module_id": "x-support", "key": "note", "type": "string"}
    payload.update(data)
    return client.post(
        detail_url(record, "custom-data/add/"), payload, headers={"HX-Request": "true"}
    )


def test_admin_adds_an_entry_inline_and_sees_it_with_its_audit(admin_client, world, record):
    response = add(
        admin_client, record, module_id="x-support", key="retries", type="integer", value="3"
    )

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#custom-data"
    item = CustomData.objects.get(record=record)
    assert (item.full_key, item.value) == ("|x-support|retries", 3)
    assert "|<wbr>x-support|<wbr>retries" in response.text
    assert 'id="history" hx-swap-oob="true"' in response.text
    assert "Added |x-support|retries." in response.text  # toast
    audit = AuditEntry.objects.get(record=record, action=AuditEntry.Action.CUSTOM_DATA_SET)
    assert audit.actor == "user/anna"


def test_admin_adds_a_connection_scoped_entry(admin_client, world, record):
    add(admin_client, record, connection=world.shop.pk, key="tag", value="vip")
    item = CustomData.objects.get(record=record)
    assert item.full_key == f"{world.shop.connection_id}|x-support|tag"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"module_id": "x|y"}, "module_id", "Module id must not contain |."),
        ({"key": "a|b"}, "key", "Key must not contain |."),
        ({"key": "  "}, "key", "Key is required."),
        ({"module_id": "support"}, "module_id", "New modules you make must start with x-"),
        ({"type": "integer", "value": "4.2"}, "value", "Value must be a whole number"),
        ({"type": "decimal", "value": "abc"}, "value", "Value must be a decimal number"),
        ({"type": "bool", "value": "maybe"}, "value", "Value must be true or false."),
        ({"type": "json", "value": "{oops"}, "value", "Value must be valid JSON"),
        ({"type": "float", "value": "1"}, "type", "Select a valid choice."),
    ],
)
def test_invalid_entries_are_refused_with_the_error_next_to_the_field(
    admin_client, world, record, data, field, message
):
    response = add(admin_client, record, **data)

    assert response.status_code == 422
    assert message in response.text
    assert f'id="cd-add-{field}-error"' in response.text
    assert not CustomData.objects.filter(record=record).exists()
    assert not AuditEntry.objects.filter(record=record).exists()


def test_adding_an_existing_key_points_to_the_entry_instead_of_overwriting(
    admin_client, world, record
):
    CustomDataFactory(record=record, module_id="x-support", key="note", value="keep me")
    response = add(admin_client, record, value="overwrite")
    assert response.status_code == 422
    assert "already has |x-support|note; edit that entry instead" in response.text
    assert CustomData.objects.get(record=record).value == "keep me"


def test_adding_to_a_connector_module_needs_a_confirmation(admin_client, world, record):
    CustomDataFactory(record=record, connection=world.erp, module_id="fortnox-invoices", key="a")

    response = add(admin_client, record, connection=world.erp.pk, module_id="fortnox-invoices")
    assert response.status_code == 422
    assert "belongs to a connector" in response.text
    assert CustomData.objects.filter(record=record).count() == 1

    response = add(
        admin_client,
        record,
        connection=world.erp.pk,
        module_id="fortnox-invoices",
        confirm_owned="on",
    )
    assert response.status_code == 200
    assert CustomData.objects.filter(record=record).count() == 2


def test_add_without_htmx_redirects_back_or_renders_the_page_with_errors(admin_client, record):
    url = detail_url(record, "custom-data/add/")
    base = {"connection": "", "module_id": "x-a", "key": "k", "type": "integer"}
    bad = admin_client.post(url, {**base, "value": "x"})
    assert bad.status_code == 422
    assert "<html" in bad.text and "Value must be a whole number" in bad.text
    good = admin_client.post(url, {**base, "value": "1"})
    assert good.status_code == 302
    assert good["Location"] == detail_url(record) + "#custom-data"


@pytest.fixture
def note(world, record):
    (item,) = set_custom_data(
        record, [CustomDataInput("x-support", "note", "string", "old")], world.actor
    )
    return item


def edit(client, record, item, **data):
    payload = {"type": item.type, "value": "new", "version": item.record.version}
    payload.update(data)
    return client.post(
        detail_url(record, f"custom-data/{item.pk}/edit/"), payload, headers={"HX-Request": "true"}
    )


def test_admin_opens_the_inline_editor_and_cancels(admin_client, record, note):
    editor = admin_client.get(
        detail_url(record, f"custom-data/{note.pk}/edit/"), headers={"HX-Request": "true"}
    )
    assert editor.status_code == 200
    assert 'class="editing"' in editor.text and ">old</textarea>" in editor.text
    assert "Change it anyway" not in editor.text  # self-made module: no confirmation

    row = admin_client.get(
        detail_url(record, f"custom-data/{note.pk}/"), headers={"HX-Request": "true"}
    )
    assert row.status_code == 200 and "old" in row.text and "editing" not in row.text


def test_admin_edits_an_entry_and_the_page_shows_it(admin_client, world, record, note):
    response = edit(admin_client, record, note, value="new")

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#custom-data"
    note.refresh_from_db()
    assert note.value == "new"
    assert 'id="record-meta" hx-swap-oob="true"' in response.text
    audit = AuditEntry.objects.filter(record=record).first()
    assert (audit.before["value"], audit.after["value"]) == ("old", "new")


def test_edit_can_change_the_type_and_the_value_must_parse_as_it(admin_client, record, note):
    response = edit(admin_client, record, note, type="integer", value="twelve")
    assert response.status_code == 422
    assert "Value must be a whole number" in response.text
    assert f'id="cd-{note.pk}-value-error"' in response.text
    note.refresh_from_db()
    assert note.value == "old"

    assert edit(admin_client, record, note, type="integer", value="12").status_code == 200
    note.refresh_from_db()
    assert (note.type, note.value) == ("integer", 12)


def test_editing_a_connector_module_entry_needs_an_explicit_confirmation(
    admin_client, world, record
):
    (item,) = set_custom_data(
        record,
        [CustomDataInput("fortnox-invoices", "voucherSeries", "string", "old", world.erp)],
        world.actor,
    )
    editor = admin_client.get(
        detail_url(record, f"custom-data/{item.pk}/edit/"), headers={"HX-Request": "true"}
    )
    assert "Change it anyway" in editor.text

    refused = edit(admin_client, record, item, value="C")
    assert refused.status_code == 422
    assert "Tick the box to confirm" in refused.text
    item.refresh_from_db()
    assert item.value == "old"

    assert edit(admin_client, record, item, value="C", confirm_owned="on").status_code == 200
    item.refresh_from_db()
    assert item.value == "C"


def test_a_stale_edit_is_refused_with_who_changed_it_and_the_current_value(
    admin_client, world, record, note
):
    opened_on = note.record.version
    set_custom_data(
        record, [CustomDataInput("x-support", "note", "string", "theirs")], Actor("user", "erik")
    )
    response = edit(admin_client, record, note, value="mine", version=opened_on)

    assert response.status_code == 422
    assert "Changed by erik" in response.text
    assert "The current value is string theirs" in response.text
    assert f'name="version" value="{opened_on + 1}"' in response.text
    note.refresh_from_db()
    assert note.value == "theirs"


def test_admin_deletes_an_entry_in_two_steps(admin_client, world, record, note):
    url = detail_url(record, f"custom-data/{note.pk}/delete/")
    ask = admin_client.get(url, headers={"HX-Request": "true"})
    assert ask.status_code == 200 and (
        'Delete <span class="id" title="|x-support|note">|x-support|note</span>?' in ask.text
    )

    not_confirmed = admin_client.post(url, {}, headers={"HX-Request": "true"})
    assert not_confirmed.status_code == 200
    assert CustomData.objects.filter(pk=note.pk).exists()

    done = admin_client.post(url, {"confirm": "yes"}, headers={"HX-Request": "true"})
    assert done.status_code == 200
    assert not CustomData.objects.filter(pk=note.pk).exists()
    assert "Deleted |x-support|note." in done.text
    audit = AuditEntry.objects.filter(record=record).first()
    assert audit.action == AuditEntry.Action.CUSTOM_DATA_DELETE


def test_support_sees_custom_data_read_only(support_client, world, record, note):
    response = support_client.get(detail_url(record))
    assert "old" in response.text
    assert "Add custom data" not in response.text
    assert "/edit/" not in response.text and "/delete/" not in response.text
    assert "Only tenant admins can change custom data." in response.text


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("post", "custom-data/add/"),
        ("get", "custom-data/{pk}/edit/"),
        ("post", "custom-data/{pk}/edit/"),
        ("get", "custom-data/{pk}/delete/"),
        ("post", "custom-data/{pk}/delete/"),
    ],
)
def test_support_may_not_write_custom_data(support_client, world, record, note, method, suffix):
    url = detail_url(record, suffix.format(pk=note.pk))
    data = {"module_id": "x-a", "key": "k", "type": "string", "value": "v", "confirm": "yes"}
    response = getattr(support_client, method)(url, data)
    assert response.status_code == 403
    note.refresh_from_db()
    assert note.value == "old"
    assert CustomData.objects.filter(record=record).count() == 1


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("post", "custom-data/add/"),
        ("get", "custom-data/{pk}/"),
        ("get", "custom-data/{pk}/edit/"),
        ("post", "custom-data/{pk}/edit/"),
        ("get", "custom-data/{pk}/delete/"),
        ("post", "custom-data/{pk}/delete/"),
    ],
)
def test_custom_data_of_another_tenant_is_404(admin_client, world, method, suffix):
    theirs = make_reference(world.other_integration, source_id="5001")
    item = CustomDataFactory(record=theirs, value="secret")
    data = {"module_id": "x-a", "key": "k", "type": "string", "value": "v", "confirm": "yes"}
    for tenant_slug in ("acme", "other"):
        url = f"/t/{tenant_slug}/records/{theirs.local_id}/{suffix.format(pk=item.pk)}"
        assert getattr(admin_client, method)(url, data).status_code == 404
    item.refresh_from_db()
    assert item.value == "secret"


def test_custom_data_of_another_record_is_404_under_this_record(admin_client, world, record):
    elsewhere = CustomDataFactory(record=make_reference(world.integration, source_id="77"))
    url = detail_url(record, f"custom-data/{elsewhere.pk}/edit/")
    assert admin_client.get(url).status_code == 404


def test_tenant_home_links_to_the_records(support_client, world):
    assert 'href="/t/acme/records/"' in support_client.get("/t/acme/").text


def test_bad_url_parameters_are_named_with_what_is_shown_instead(support_client, world):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")

    response = support_client.get(list_url(modified_after="notadate", per_page="100000"))

    text = text_of(response.text)
    assert "modified_after=notadate is not valid: not filtered by it." in text
    assert "per_page=100000 is not one of" in text and "showing 50" in text
    assert record.local_id in response.text  # the list still shows, unfiltered

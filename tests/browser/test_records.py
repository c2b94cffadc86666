"""The record page in Chromium: custom data added and edited inline, errors by the field."""

import re

import pytest
from playwright.sync_api import Page, expect

from records.custom_data import CustomDataInput, set_custom_data
from records.models import CustomData
from tests.factories import PASSWORD, make_reference

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page: Page, live_server, username: str, next_url: str):
    page.goto(f"{live_server.url}/login/?next={next_url}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}{next_url}")
    # The URL changes when navigation commits, before the deferred scripts (htmx, refdesk.js)
    # have run; keys pressed earlier would reach a page that does not listen yet.
    page.wait_for_load_state()


@pytest.fixture
def record(world):
    return make_reference(world.integration, source_id="5001", target_id="INV-1")


def test_admin_adds_custom_data_inline_after_fixing_an_error(live_server, page: Page, record):
    log_in(page, live_server, "anna", f"/t/acme/records/{record.local_id}/")
    section = page.locator("#custom-data")
    expect(section.get_by_text("No custom data on this record.")).to_be_visible()

    form = section.get_by_role("form", name="Add custom data")
    form.get_by_label("Module").fill("support")
    form.get_by_label("Key").fill("retries")
    form.get_by_label("Type").select_option("integer")
    form.get_by_label("Value").fill("three")
    form.get_by_role("button", name="Add entry").click()

    # Everything wrong is said at once, each error by its field.
    expect(form.get_by_text("New modules you make must start with x-")).to_be_visible()
    expect(form.get_by_label("Module")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_text("Value must be a whole number, e.g. 42.")).to_be_visible()

    form.get_by_label("Module").fill("x-support")
    form.get_by_role("button", name="Add entry").click()
    # The value error was already shown after the first try: wait for the second answer
    # (the module error gone) before typing, or the swap would undo the new value.
    expect(form.get_by_label("Module")).not_to_have_attribute("aria-invalid", "true")
    expect(form.get_by_text("Value must be a whole number, e.g. 42.")).to_be_visible()

    form.get_by_label("Value").fill("3")
    form.get_by_role("button", name="Add entry").click()

    row = section.locator("tr", has_text="|x-support|retries")
    expect(row).to_contain_text("integer")
    expect(row.locator("pre")).to_have_text("3")
    expect(page.locator("#toasts")).to_contain_text("Added |x-support|retries.")
    expect(page.locator("#history")).to_contain_text("Set custom data")
    expect(section.get_by_role("form", name="Add custom data").get_by_label("Key")).to_have_value(
        ""
    )
    assert CustomData.objects.get(record=record).value == 3


def test_admin_edits_a_connector_entry_inline_confirming_it(live_server, page: Page, world, record):
    set_custom_data(
        record,
        [CustomDataInput("fortnox-invoices", "voucherSeries", "string", "B", world.erp)],
        world.actor,
    )
    log_in(page, live_server, "anna", f"/t/acme/records/{record.local_id}/")
    row = page.locator("#custom-data tr", has_text="voucherSeries")

    row.get_by_role("link", name="Edit").click()
    editing = page.locator("#custom-data tr.editing")
    value = editing.get_by_label("Value of")
    expect(value).to_be_focused()
    editing.get_by_label("Type of").select_option("integer")
    value.fill("C")
    editing.get_by_role("button", name="Save").click()

    expect(editing.get_by_text("Value must be a whole number, e.g. 42.")).to_be_visible()
    expect(editing.get_by_text("Tick the box to confirm the change.")).to_be_visible()

    editing.get_by_label("Type of").select_option("string")
    editing.get_by_label("Change it anyway").check()
    editing.get_by_role("button", name="Save").click()

    expect(page.locator("#custom-data tr.editing")).to_have_count(0)
    expect(row.locator("pre")).to_have_text("C")
    expect(page.locator("#record-meta")).to_contain_text("user/anna")
    item = CustomData.objects.get(record=record)
    assert (item.type, item.value) == ("string", "C")


def test_escape_cancels_an_inline_edit(live_server, page: Page, world, record):
    set_custom_data(record, [CustomDataInput("x-support", "note", "string", "hi")], world.actor)
    log_in(page, live_server, "anna", f"/t/acme/records/{record.local_id}/")

    page.locator("#custom-data tr", has_text="note").get_by_role("link", name="Edit").click()
    page.get_by_label("Value of").fill("changed")
    page.keyboard.press("Escape")

    expect(page.locator("#custom-data tr.editing")).to_have_count(0)
    expect(page.locator("#custom-data tr", has_text="note").locator("pre")).to_have_text("hi")


def test_enter_saves_an_inline_custom_data_edit(live_server, page: Page, world, record):
    set_custom_data(record, [CustomDataInput("x-support", "note", "string", "hi")], world.actor)
    log_in(page, live_server, "anna", f"/t/acme/records/{record.local_id}/")

    page.locator("#custom-data tr", has_text="note").get_by_role("link", name="Edit").click()
    page.get_by_label("Value of").fill("saved with Enter")
    page.keyboard.press("Enter")

    expect(page.locator("#custom-data tr.editing")).to_have_count(0)
    expect(page.locator("#custom-data tr", has_text="note").locator("pre")).to_have_text(
        "saved with Enter"
    )
    assert CustomData.objects.get(record=record).value == "saved with Enter"


def test_keys_pressed_before_a_swap_settles_still_go_through_htmx(
    live_server, page: Page, world, record
):
    # htmx wires swapped-in content when the swap settles; a fast typist (or a loaded CI
    # machine) can press Esc before that. Widen the window so the test would catch it.
    set_custom_data(record, [CustomDataInput("x-support", "note", "string", "hi")], world.actor)
    log_in(page, live_server, "anna", f"/t/acme/records/{record.local_id}/")
    page.evaluate("htmx.config.defaultSettleDelay = 3000")

    page.locator("#custom-data tr", has_text="note").get_by_role("link", name="Edit").click()
    page.get_by_label("Value of").fill("changed")
    page.keyboard.press("Escape")

    expect(page.locator("#custom-data tr.editing")).to_have_count(0)
    expect(page.locator("#custom-data tr", has_text="note").locator("pre")).to_have_text("hi")
    expect(page).to_have_url(f"{live_server.url}/t/acme/records/{record.local_id}/")


def test_list_search_swaps_the_table_and_keeps_the_url(live_server, page: Page, world, record):
    make_reference(world.integration, source_id="6001")
    log_in(page, live_server, "sven", "/t/acme/records/order/")
    expect(page.locator("#records-table tbody tr")).to_have_count(2)

    page.get_by_role("searchbox").fill("5001")

    expect(page.locator("#records-table tbody tr")).to_have_count(1)
    expect(page).to_have_url(f"{live_server.url}/t/acme/records/order/?q=5001")
    # Rows lead with the id people know; the page's title too, with the local id beside it.
    page.locator("#records-table").get_by_role("link", name="5001", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Order Shopify 5001")
    expect(page.locator(".local-id")).to_contain_text(record.local_id)
    expect(page).to_have_title(re.compile(r"^Order Shopify 5001"))


def test_references_page_to_the_record_and_back(live_server, page: Page, world, record):
    from django.urls import reverse

    references = reverse(
        "references:list",
        kwargs={"tenant_slug": "acme", "integration_id": world.integration.pk, "entity": "orders"},
    )
    log_in(page, live_server, "sven", references)

    page.get_by_role("link", name="5001", exact=True).click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Shopify 5001")
    expect(page.locator(".local-id")).to_contain_text(record.local_id)
    fortnox = page.locator("#remote-ids tbody tr", has_text="INV-1")
    fortnox.get_by_role("link", name="Shopify -> Fortnox").click()

    expect(page).to_have_url(f"{live_server.url}{references}?q=INV-1")
    expect(page.get_by_role("link", name="INV-1", exact=True)).to_be_visible()

"""In Chromium (issue 22, items 5 and 6): the row just deleted says who lost it and when, and
the tab counts follow every htmx action without a reload; History goes back to the synced
values and puts a deleted reference back."""

import re

import pytest
from playwright.sync_api import Page, expect

from records.models import RemoteId
from references.services import ReferenceInput, delete_reference, edit_reference
from tests.browser.test_references import (
    assert_not_reloaded,
    log_in,
    mark_page,
    orders_url,
)
from tests.factories import make_reference

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def target_of(world, record):
    row = RemoteId.objects.filter(record=record, connection=world.erp).first()
    return row and row.remote_id


def orders_tab(page: Page):
    """The Orders tab's count of linked references."""
    return page.get_by_role("tab", name=re.compile("^Orders")).locator(".count")


def unlinked_filter(page: Page):
    return page.locator("#ref-linked").get_by_role("link", name=re.compile("^Unlinked"))


def test_a_deleted_row_says_lost_by_you_just_now_and_the_counts_follow(
    live_server, page: Page, world
):
    make_reference(world.integration, source_id="5001", target_id="INV-1")
    record = make_reference(world.integration, source_id="5002", target_id="INV-2")
    log_in(page, live_server, "anna", orders_url(world))
    expect(orders_tab(page)).to_have_text("2")
    mark_page(page)
    row = page.locator(f"#ref-{record.local_id}")

    row.get_by_role("button", name="Delete reference 5002").click()
    row.get_by_role("button", name="Delete reference", exact=True).click()

    expect(row).to_contain_text("lost just now by anna (delete); it was INV-2")
    expect(row).not_to_contain_text("never linked")
    expect(orders_tab(page)).to_have_text("1")
    expect(unlinked_filter(page).locator(".count")).to_have_text("1")
    assert_not_reloaded(page)


def test_reverting_the_first_edit_of_a_reference_brings_back_its_values_and_counts(
    live_server, page: Page, world
):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    delete_reference(world.integration, record, world.actor)
    record.refresh_from_db()
    log_in(page, live_server, "anna", orders_url(world))
    expect(orders_tab(page)).to_have_text("0")
    mark_page(page)
    group = page.locator(f"#ref-{record.local_id}")

    group.get_by_role("button", name="History of 5001").click()
    group.get_by_role("button", name=re.compile("^Put back")).click()

    expect(page.locator(".toast").get_by_text("Reverted to 5001 → INV-1.")).to_be_visible()
    expect(group.locator("tr[data-row]")).to_contain_text("INV-1")
    expect(orders_tab(page)).to_have_text("1")
    assert target_of(world, record) == "INV-1"
    assert_not_reloaded(page)


def test_history_reverts_the_first_edit_to_the_values_before_it(live_server, page: Page, world):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    edit_reference(
        world.integration,
        record,
        ReferenceInput("5001", "INV-2"),
        world.actor,
        version=record.version,
    )
    log_in(page, live_server, "anna", orders_url(world))
    group = page.locator(f"#ref-{record.local_id}")
    expect(group).to_contain_text("INV-2")

    group.get_by_role("button", name="History of 5001").click()
    group.get_by_role("button", name=re.compile("^Revert to before")).click()

    expect(page.locator(".toast").get_by_text("Reverted to 5001 → INV-1.")).to_be_visible()
    expect(group.locator("tr[data-row]")).to_contain_text("INV-1")
    assert target_of(world, record) == "INV-1"

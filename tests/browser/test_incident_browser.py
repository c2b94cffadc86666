"""A remote reset in Chromium: the tenant home says it in one sentence, Health shows the refused
writes, a fix of a selection is applied, and Retry sync puts its records back into the sync
after its confirmation."""

import re

import pytest
from playwright.sync_api import Page, expect

from records.models import AuditEntry, Record
from tests.browser.test_references import log_in
from tests.references.test_refused_and_incident import erp_api, order, refused_put, sync_id

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["erp_api"]  # the fixture, imported for this module's tests


@pytest.fixture
def reset(world, erp_api):
    """Fortnox hands out 90001-90003 again; one of its ids changed ref under a sync."""
    for n in (1, 2, 3):
        order(world, f"500{n}", f"9000{n}")
        refused_put(erp_api, order(world, f"600{n}"), f"9000{n}")
    invoice = order(world, "7001")
    sync_id(world, invoice, "90007", "Faktura 90007")
    sync_id(world, invoice, "90007", "Faktura 3")
    return world


def test_from_the_reset_sentence_to_retry_sync_of_a_fixed_selection(live_server, page: Page, reset):
    log_in(page, live_server, "anna", "/t/acme/")
    sentence = page.get_by_role("alert").filter(has_text="was probably reset")
    expect(sentence).to_contain_text(
        re.compile(r"Fortnox was probably reset around \d\d:\d\d: 4 of its ids are gone or reused")
    )
    expect(sentence.get_by_role("link", name=re.compile("^Recover orders"))).to_be_visible()

    page.get_by_role("link", name="Health", exact=True).first.click()
    expect(page.get_by_role("alert").filter(has_text="was probably reset")).to_have_count(1)
    page.get_by_role("link", name="Orders", exact=True).click()
    page.get_by_role("link", name=re.compile("^Refused writes")).click()
    rows = page.locator("table.health-findings tbody tr")
    expect(rows).to_have_count(3)

    page.get_by_label("Select 90001").check()
    page.get_by_label("Select 90002").check()
    page.get_by_role("button", name="Unlink from the holder: selected…").click()
    expect(page.get_by_role("heading", name=re.compile("^Preview"))).to_be_visible()
    page.get_by_role("button", name="Apply 2 changes").click()

    toast = page.locator(".messages, [role=status]").filter(has_text="Unlinked 2 order ids")
    expect(toast.first).to_be_visible()
    toast.first.get_by_role("link", name="Retry sync…").click()

    expect(page.get_by_role("heading", name="Retry sync for 2 orders")).to_be_visible()
    expect(page.get_by_role("link", name="Shopify 5001")).to_be_visible()
    expect(page.get_by_role("link", name="Shopify 5002")).to_be_visible()
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.RETRY_SYNC).exists()
    page.get_by_role("button", name="Retry sync for 2 orders").click()

    expect(page.get_by_text("Queued 2 orders for the next sync")).to_be_visible()
    retried = AuditEntry.objects.filter(action=AuditEntry.Action.RETRY_SYNC)
    assert {entry.record.remote_ids.get(connection=reset.shop).remote_id for entry in retried} == {
        "5001",
        "5002",
    }
    assert Record.objects.filter(last_modified_by="user/anna").count() >= 2

"""The Health pages in Chromium: from the tenant home to a finding, a fix with its preview and
Undo (reconcile: test_reconcile_browser.py)."""

import re

import pytest
from playwright.sync_api import Page, expect

from records.models import RemoteId
from references.services import delete_reference
from tests.browser.test_references import log_in
from tests.factories import make_reference

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def target_of(world, source_id):
    row = RemoteId.objects.get(connection=world.shop, remote_id=source_id)
    target = RemoteId.objects.filter(record=row.record, connection=world.erp).first()
    return target and target.remote_id


@pytest.fixture
def lost(world):
    make_reference(world.integration, source_id="5001", target_id="INV-1", source_ref="#1")
    record = make_reference(world.integration, source_id="5002", target_id="INV-2")
    make_reference(world.integration, source_id="6003")  # never linked
    delete_reference(world.integration, record, world.actor)
    return world


def test_the_health_page_opens_from_the_tenant_home(live_server, page: Page, lost):
    log_in(page, live_server, "anna", "/t/acme/")
    orders = page.get_by_role("row", name=re.compile("^Orders"))
    expect(orders).to_contain_text("2 unlinked")
    orders.get_by_role("link", name="1 lost").click()

    expect(page.get_by_role("heading", name="Orders health")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"The next sync will create 2 new orders in Fortnox"))
    ).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("^Lost links"))).to_have_attribute(
        "aria-current", "page"
    )
    rows = page.locator("table.health-findings tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("5002")
    expect(rows.first).to_contain_text("INV-2")
    expect(rows.first).to_contain_text("anna")

    page.get_by_role("link", name="Health", exact=True).first.click()
    expect(page.get_by_role("heading", name=re.compile("^Health of Shopify"))).to_be_visible()


def test_put_back_a_lost_link_after_its_preview_then_undo(live_server, page: Page, lost):
    url = f"/t/acme/integrations/{lost.integration.pk}/health/orders/?finding=lost"
    log_in(page, live_server, "anna", url)

    page.get_by_role("button", name="Put back the old link: 5002").click()
    expect(page.get_by_role("heading", name="Preview: Put back the old link")).to_be_visible()
    expect(page.get_by_role("cell", name="Link 5002 → INV-2")).to_be_visible()
    assert target_of(lost, "5002") is None  # a preview writes nothing

    page.get_by_role("button", name="Apply 1 change").click()
    toast = page.locator(".toast").filter(has_text="Put back 1 lost order link")
    expect(toast).to_be_visible()
    expect(page.get_by_text("No lost links")).to_be_visible()
    assert target_of(lost, "5002") == "INV-2"

    toast.get_by_role("button", name="Undo").click()
    expect(page.locator(".toast").filter(has_text="Undone")).to_be_visible()
    expect(page.locator("table.health-findings tbody tr")).to_have_count(1)
    assert target_of(lost, "5002") is None

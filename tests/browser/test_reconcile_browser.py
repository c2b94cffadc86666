"""Reconcile in Chromium: upload an export, read the report, preview the recovery plan by
names, apply it, and undo it from the report page (not the toast); and a plan that unlinks
more than a few percent of the tab, applied only once the entity is typed."""

import re

import pytest
from playwright.sync_api import Page, expect

from records.models import Record, RemoteId
from tests.browser.test_references import log_in
from tests.factories import make_reference

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def target_of(world, source_id):
    row = RemoteId.objects.get(connection=world.shop, remote_id=source_id)
    target = RemoteId.objects.filter(record=row.record, connection=world.erp).first()
    return target and target.remote_id


@pytest.fixture
def orders(world):
    """30 linked orders (5001.. -> INV-1..) and an unlinked one, order number 1100."""
    for number in range(1, 31):
        make_reference(world.integration, source_id=f"{5000 + number}", target_id=f"INV-{number}")
    unlinked = make_reference(world.integration, source_id="5100")
    Record.objects.filter(pk=unlinked.pk).update(data={"orderNumber": 1100})
    return world


def upload(page: Page, content: bytes):
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "fortnox.csv", "mimeType": "text/csv", "buffer": content}]
    )
    page.get_by_role("button", name="Compare").click()


def test_upload_preview_apply_then_undo_from_the_report(live_server, page: Page, orders):
    url = f"/t/acme/integrations/{orders.integration.pk}/health/orders/reconcile/"
    log_in(page, live_server, "anna", url)
    lines = "".join(f"INV-{n},,\n" for n in range(2, 31))
    upload(page, f"Id,Reference,OrderNumber\n{lines}NEW-1,,1100\n".encode())

    expect(page.get_by_text(re.compile(r"It shows 29 of the 30 Fortnox ids"))).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("^Gone remotely"))).to_contain_text("1")
    page.get_by_role("link", name=re.compile("^Gone remotely")).click()
    expect(page.get_by_role("cell", name="Shopify 5001")).to_be_visible()
    expect(
        page.get_by_role("checkbox", name=re.compile("^Unlink 1 id gone from Fortnox"))
    ).to_be_checked()

    page.get_by_role("button", name="Preview the plan…").click()
    expect(page.get_by_text("Remove id INV-1 from Shopify 5001")).to_be_visible()
    expect(page.get_by_text("Set id NEW-1 on Shopify 5100")).to_be_visible()
    assert target_of(orders, "5001") == "INV-1"  # a preview writes nothing

    page.get_by_role("button", name="Apply 2 changes").click()
    expect(page.locator(".toast").filter(has_text="Reconciled 2 order ids")).to_be_visible()
    assert target_of(orders, "5001") is None
    assert target_of(orders, "5100") == "NEW-1"

    page.reload()  # the toast is gone; the report keeps its Undo
    expect(page.get_by_text(re.compile("^Applied: Reconciled 2"))).to_be_visible()
    page.locator(".reconcile-applied").get_by_role("button", name="Undo this plan").click()
    expect(page.locator(".toast").filter(has_text="Undone")).to_be_visible()
    expect(page.get_by_text(re.compile(r"\(undone since\)"))).to_be_visible()
    assert target_of(orders, "5001") == "INV-1"
    assert target_of(orders, "5100") is None


def test_a_big_unlink_is_applied_only_once_the_entity_is_typed(live_server, page: Page, orders):
    url = f"/t/acme/integrations/{orders.integration.pk}/health/orders/reconcile/"
    log_in(page, live_server, "anna", url)
    upload(page, b"Id\nINV-1\nINV-2\n")  # 2 of 30: partial, nothing unlinked by default

    gone = page.get_by_role("checkbox", name=re.compile("^Unlink 28 ids gone from Fortnox"))
    expect(gone).not_to_be_checked()
    gone.check()
    page.get_by_role("button", name="Preview the plan…").click()

    expect(page.get_by_text(re.compile("This unlinks 28 of the 30 orders links"))).to_be_visible()
    apply = page.get_by_role("button", name="Apply 28 changes")
    expect(apply).to_be_disabled()
    page.get_by_label("Type orders to confirm").fill("orders")
    expect(apply).to_be_enabled()
    apply.click()

    expect(page.locator(".toast").filter(has_text="Reconciled 28 order ids")).to_be_visible()
    assert target_of(orders, "5003") is None
    assert target_of(orders, "5001") == "INV-1"

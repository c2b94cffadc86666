"""The whole recovery from a remote wipe in Chromium (docs/recovering-from-a-remote-wipe.md):
the tenant home says Fortnox was reset, its button opens Reconcile on Fortnox's side, the
reset system's export moves the reused ids to the records their keys match (previewed by
names), the integration is recovered (the sentence is gone), Retry sync queues the moved
records, and Undo from the report brings it all back."""

import re

import pytest
from playwright.sync_api import Page, expect

from records.models import AuditEntry, Record, RemoteId
from tests.browser.test_reconcile_browser import upload
from tests.browser.test_references import log_in
from tests.references.test_refused_and_incident import erp_api, order, refused_put, sync_id

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["erp_api"]  # the fixture, imported for this module's tests

RESET = re.compile(r"Fortnox was probably reset around \d\d:\d\d: 4 of its ids are gone or reused")


def erp_id(world, source_id):
    row = RemoteId.objects.get(connection=world.shop, remote_id=source_id)
    target = RemoteId.objects.filter(record=row.record, connection=world.erp).first()
    return target and target.remote_id


@pytest.fixture
def wiped(world, erp_api):
    """Orders 5001-5003 hold Fortnox 90001-90003; after the reset Fortnox gave those ids to
    the invoices of orders 6001-6003 (order numbers 6001-6003), and its connector was refused
    when it tried to write them there; and the sync saw its id 90007 come back with another
    ref (a reused fingerprint)."""
    for n in (1, 2, 3):
        order(world, f"500{n}", f"9000{n}")
        new = order(world, f"600{n}")
        Record.objects.filter(pk=new.pk).update(data={"orderNumber": 6000 + n})
        refused_put(erp_api, new, f"9000{n}")
    invoice = order(world, "7001")
    sync_id(world, invoice, "90007", "Faktura 90007")
    sync_id(world, invoice, "90007", "Faktura 3")
    return world


def test_from_the_reset_sentence_to_a_recovered_integration_and_back(
    live_server, page: Page, wiped
):
    log_in(page, live_server, "anna", "/t/acme/")
    sentence = page.get_by_role("alert").filter(has_text="was probably reset")
    expect(sentence).to_contain_text(RESET)
    sentence.get_by_role("link", name=re.compile("^Recover orders")).click()

    expect(page.get_by_role("radio", name=re.compile(r"Fortnox \(the target\)"))).to_be_checked()
    export = (
        "Id,Reference,OrderNumber\n"
        + "".join(f"9000{n},Faktura new {n},600{n}\n" for n in (1, 2, 3))
        + "90007,Faktura 3,7001\n"
    )
    upload(page, export.encode())
    expect(page.get_by_role("link", name=re.compile("^Reused ids"))).to_contain_text("3")
    page.get_by_role("button", name="Preview the plan…").click()
    for n in (1, 2, 3):
        expect(page.get_by_text(f"Remove id 9000{n} from Shopify 500{n}")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Set id 90001 .*on Shopify 6001"))).to_be_visible()
    # 3 of the tab's 4 links change hands: past the few percent that apply without typing.
    page.get_by_label("Type orders to confirm").fill("orders")
    page.get_by_role("button", name="Apply 6 changes").click()
    expect(page.locator(".toast").filter(has_text="Reconciled 6 order ids")).to_be_visible()

    assert [erp_id(wiped, f"600{n}") for n in (1, 2, 3)] == ["90001", "90002", "90003"]
    assert [erp_id(wiped, f"500{n}") for n in (1, 2, 3)] == [None, None, None]
    report = page.url
    page.goto(f"{live_server.url}/t/acme/")
    expect(page.get_by_text("was probably reset")).to_have_count(0)

    page.goto(report)
    applied = page.locator(".reconcile-applied")
    applied.get_by_role("link", name="Retry sync…").click()
    page.get_by_role("button", name=re.compile(r"^Retry sync for 6 orders")).click()
    expect(page.get_by_text("Queued 6 orders for the next sync")).to_be_visible()
    assert AuditEntry.objects.filter(action=AuditEntry.Action.RETRY_SYNC).count() == 6

    page.goto(report)
    page.locator(".reconcile-applied").get_by_role("button", name="Undo this plan").click()
    expect(page.get_by_text(re.compile(r"\(undone since\)"))).to_be_visible()
    assert [erp_id(wiped, f"500{n}") for n in (1, 2, 3)] == ["90001", "90002", "90003"]
    page.goto(f"{live_server.url}/t/acme/")
    expect(page.get_by_role("alert").filter(has_text="was probably reset")).to_contain_text(RESET)

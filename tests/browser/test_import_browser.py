"""Upload -> preview -> apply in Chromium, and the Undo button."""

import pytest
from playwright.sync_api import Page, expect

from records.models import Batch, RemoteId
from tests.factories import PASSWORD, make_reference
from tests.workers import run_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_uploads_a_csv_previews_it_applies_it_and_undoes_it(
    live_server, page: Page, world, tmp_path
):
    make_reference(world.integration, source_id="5001", target_id="INV-1")
    make_reference(world.integration, source_id="5002")
    rows = "".join(f"{6000 + i};INV-{6000 + i}\r\n" for i in range(3000))
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(
        f"source_id;target_id\r\n5001;INV-1\r\n5002;INV-2\r\n;INV-X\r\n{rows}",
        encoding="utf-8-sig",
    )
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("anna")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(
        f"{live_server.url}/t/acme/integrations/{world.integration.pk}/references/orders/import/"
    )
    page.get_by_label("CSV file", exact=True).set_input_files(str(csv_file))
    page.get_by_role("button", name="Preview import").click()

    expect(page.get_by_role("heading", name="Preview of orders.csv")).to_be_visible()
    expect(page.get_by_text("Shopify id is required.")).to_be_visible()
    assert not RemoteId.objects.filter(remote_id="INV-2").exists()

    page.get_by_role("button", name="Import 3,001 references").click()

    # Applying 3,001 rows on a loaded CI machine can take longer than the default 5 s wait;
    # this waits for the result, it does not assert a speed.
    expect(page.get_by_role("heading", name="Imported orders.csv")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("3,001 references written")).to_be_visible()
    assert RemoteId.objects.filter(connection=world.erp).count() == 3002
    assert Batch.objects.get().row_count == 3001

    page.get_by_role("button", name="Undo this import").click()

    expect(
        page.get_by_text("Undone: Imported 3001 order references from orders.csv.")
    ).to_be_visible()
    assert RemoteId.objects.filter(connection=world.erp).count() == 1


def test_a_large_file_shows_its_check_in_progress_then_the_preview(
    live_server, page: Page, world, tmp_path, settings
):
    settings.REFDESK_PLAN_JOB_THRESHOLD = 10  # 30 lines make a "large" file here
    csv_file = tmp_path / "orders.csv"
    rows = "".join(f"{7000 + i},INV-{7000 + i}\n" for i in range(30))
    csv_file.write_text(f"source_id,target_id\n{rows}", encoding="utf-8")
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("anna")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(
        f"{live_server.url}/t/acme/integrations/{world.integration.pk}/references/orders/import/"
    )
    page.get_by_label("CSV file", exact=True).set_input_files(str(csv_file))
    page.get_by_role("button", name="Preview import").click()

    expect(page.get_by_role("heading", name="Checking orders.csv")).to_be_visible()
    expect(page.get_by_text("Waiting for a worker")).to_be_visible()
    expect(page.get_by_role("button", name="Import 30 references")).to_have_count(0)

    run_worker()  # the page polls, sees the check done and reloads with the preview

    expect(page.get_by_role("heading", name="Preview of orders.csv")).to_be_visible()
    expect(page.get_by_role("button", name="Import 30 references")).to_be_visible()

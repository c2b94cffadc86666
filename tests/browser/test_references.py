"""The References page in Chromium: tabs, search as you type, add, edit, delete, delete all."""

import re

import pytest
from playwright.sync_api import Page, expect

from records.models import RemoteId
from references import services
from references.services import count_references
from tests.factories import PASSWORD, make_reference
from tests.workers import job_held_open, run_worker

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


def orders_url(world, entity="orders"):
    return f"/t/acme/integrations/{world.integration.pk}/references/{entity}/"


def mark_page(page: Page):
    """Set a flag that a full page load would wipe out."""
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page: Page):
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"


def group(page: Page, world, source_id):
    """The <tbody> of one reference: its row and whatever replaces it (edit, confirm)."""
    return page.locator(f"#ref-{world.refs[source_id].local_id}")


def target_of(world, source_id):
    row = RemoteId.objects.get(connection=world.shop, remote_id=source_id)
    target = RemoteId.objects.filter(record=row.record, connection=world.erp).first()
    return target and target.remote_id


@pytest.fixture
def orders(world):
    world.refs = {
        "5001": make_reference(
            world.integration, source_id="5001", target_id="INV-1", source_ref="#1"
        ),
        "5002": make_reference(
            world.integration, source_id="5002", target_id="INV-2", source_ref="#2"
        ),
        "6003": make_reference(world.integration, source_id="6003"),
    }
    make_reference(world.integration, "customer", source_id="C-77", target_id="K-77")
    return world


def test_switching_tabs_swaps_the_table_and_changes_the_url(live_server, page: Page, orders):
    log_in(page, live_server, "sven", orders_url(orders))
    expect(page.get_by_role("link", name="5001", exact=True)).to_be_visible()
    mark_page(page)

    page.get_by_role("tab", name=re.compile("^Customers")).click()

    expect(page).to_have_url(f"{live_server.url}{orders_url(orders, 'customers')}")
    expect(page.get_by_role("tab", name=re.compile("^Customers"))).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.get_by_role("link", name="C-77", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="5001", exact=True)).to_have_count(0)
    assert_not_reloaded(page)

    page.go_back()
    expect(page).to_have_url(f"{live_server.url}{orders_url(orders)}")
    expect(page.get_by_role("link", name="5001", exact=True)).to_be_visible()


def test_next_and_previous_swap_the_page_and_show_its_top(live_server, page: Page, world):
    for n in range(60):
        make_reference(world.integration, source_id=f"S{n:03d}", target_id=f"T{n:03d}")
    log_in(page, live_server, "sven", orders_url(world) + "?per_page=25")
    mark_page(page)

    page.get_by_role("link", name="Next ›").scroll_into_view_if_needed()
    assert page.evaluate("window.scrollY") > 0
    page.get_by_role("link", name="Next ›").click()

    expect(page.get_by_text("Showing 26–50 of 60")).to_be_visible()
    expect(page).to_have_url(re.compile(r"page=2&after="))
    # The new page is as long as the old one: without scrolling, its top would be out of sight.
    expect(page.get_by_role("link", name="S034", exact=True)).to_be_in_viewport()
    page.wait_for_function("window.scrollY === 0")
    assert_not_reloaded(page)

    page.get_by_role("link", name="‹ Previous").click()

    expect(page.get_by_text("Showing 1–25 of 60")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}{orders_url(world)}?per_page=25")
    assert_not_reloaded(page)


def test_search_as_you_type_filters_and_updates_the_url(live_server, page: Page, orders):
    log_in(page, live_server, "sven", orders_url(orders))
    mark_page(page)

    page.keyboard.press("/")
    expect(page.get_by_role("searchbox")).to_be_focused()
    page.keyboard.type("INV-2")

    expect(page).to_have_url(re.compile(r"\?q=INV-2$"))
    rows = page.locator("tr[data-row]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("5002")
    expect(rows.first).to_contain_text("matched target id")

    # Esc clears the box (the table follows) and leaves it, so j moves between rows again.
    page.keyboard.press("Escape")
    expect(page.get_by_role("searchbox")).to_have_value("")
    expect(page.get_by_role("searchbox")).not_to_be_focused()
    expect(rows).to_have_count(3)
    page.keyboard.press("j")
    expect(page.get_by_role("searchbox")).to_have_value("")
    expect(rows.first).to_be_focused()
    page.keyboard.press("/")
    page.keyboard.type("INV-2")
    expect(rows).to_have_count(1)

    page.get_by_role("link", name=re.compile("^Unlinked")).click()
    expect(page).to_have_url(re.compile(r"\?q=INV-2&linked=unlinked$"))
    expect(page.get_by_text("No order references match")).to_be_visible()
    assert_not_reloaded(page)

    page.reload()
    expect(page.get_by_role("searchbox")).to_have_value("INV-2")
    expect(page.get_by_text("No order references match")).to_be_visible()


def test_add_shows_the_conflict_then_adds_the_row_on_top(live_server, page: Page, orders):
    log_in(page, live_server, "sven", orders_url(orders))

    page.get_by_role("button", name="+ Add reference").click()
    form = page.get_by_role("region", name="Add order reference")
    form.get_by_label("Shopify id", exact=True).fill("7001")
    form.get_by_label("Fortnox id", exact=True).fill("INV-1")
    form.get_by_role("button", name="Add reference").click()

    error = form.get_by_text("Fortnox id INV-1 is already linked to Shopify id 5001.")
    expect(error).to_be_visible()
    expect(form.get_by_label("Fortnox id", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_role("link", name="Open it")).to_have_attribute(
        "href", re.compile(r"^/t/acme/records/[0-9a-f]{32}/$")
    )
    assert not RemoteId.objects.filter(remote_id="7001").exists()
    # The cursor lands in the field to fix (not back in the first one).
    expect(form.get_by_label("Fortnox id", exact=True)).to_be_focused()

    form.get_by_label("Fortnox id", exact=True).fill("INV-7")
    form.get_by_role("button", name="Add reference").click()

    expect(form).to_have_count(0)
    first = page.locator("tr[data-row]").first
    expect(first).to_contain_text("7001")
    expect(first).to_contain_text("INV-7")
    expect(page.locator(".toast").get_by_text("Linked 7001 to INV-7.")).to_be_visible()
    assert target_of(orders, "7001") == "INV-7"


def test_inline_edit_saves_with_enter_and_cancels_with_escape(live_server, page: Page, orders):
    log_in(page, live_server, "sven", orders_url(orders))
    row = group(page, orders, "5001")

    row.get_by_role("button", name="Edit 5001").click()
    target = row.get_by_label("Fortnox id", exact=True)
    expect(target).to_be_focused()
    target.fill("INV-99")
    target.press("Escape")

    expect(row.get_by_role("button", name="Edit 5001")).to_be_visible()
    expect(row).to_contain_text("INV-1")
    assert target_of(orders, "5001") == "INV-1"

    row.get_by_role("button", name="Edit 5001").click()
    row.get_by_label("Fortnox id", exact=True).fill("INV-2")
    row.get_by_label("Fortnox id", exact=True).press("Enter")
    expect(
        row.get_by_text("Fortnox id INV-2 is already linked to Shopify id 5002.")
    ).to_be_visible()

    row.get_by_label("Fortnox id", exact=True).fill("INV-99")
    row.get_by_label("Fortnox id", exact=True).press("Enter")

    expect(row.get_by_role("button", name="Edit 5001")).to_be_visible()
    expect(row).to_contain_text("INV-99")
    assert target_of(orders, "5001") == "INV-99"


def test_enter_on_a_focused_row_opens_the_edit(live_server, page: Page, orders):
    log_in(page, live_server, "sven", orders_url(orders))

    page.keyboard.press("j")
    expect(page.locator("tr[data-row]:focus")).to_have_count(1)
    page.keyboard.press("Enter")

    expect(page.locator("tr.editing")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator("tr.editing")).to_have_count(0)


def test_delete_asks_first_and_can_be_undone(live_server, page: Page, orders):
    log_in(page, live_server, "anna", orders_url(orders))
    row = group(page, orders, "5002")

    row.get_by_role("button", name="Delete reference 5002").click()
    expect(row).to_contain_text("Both records stay")
    expect(row).to_contain_text("new order in Fortnox")
    row.get_by_role("button", name="Delete reference", exact=True).click()

    expect(row).to_contain_text("Not linked")
    assert target_of(orders, "5002") is None
    toast = page.locator(".toast", has_text="Deleted reference 5002 → INV-2")
    toast.get_by_role("button", name="Undo").click()

    expect(page.locator(".toast").get_by_text("Restored 1 reference.")).to_be_visible()
    expect(group(page, orders, "5002")).to_contain_text("INV-2")
    assert target_of(orders, "5002") == "INV-2"


def test_support_sees_no_delete_controls(live_server, page: Page, orders):
    log_in(page, live_server, "sven", orders_url(orders))

    expect(page.get_by_role("button", name="Edit 5001")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    expect(page.get_by_text("Danger zone")).to_have_count(0)


def test_delete_all_needs_the_typed_entity_name_and_can_be_restored(
    live_server, page: Page, orders
):
    log_in(page, live_server, "anna", orders_url(orders))

    page.get_by_role("link", name="Delete all order references…").click()
    expect(page.get_by_role("heading", name="Delete all 2 order references?")).to_be_visible()
    button = page.get_by_role("button", name="Delete 2 references")
    expect(button).to_be_disabled()

    confirm = page.get_by_label("Type orders to confirm")
    confirm.fill("order")
    expect(button).to_be_disabled()
    confirm.fill("orders")
    expect(button).to_be_enabled()
    button.click()

    expect(page).to_have_url(f"{live_server.url}{orders_url(orders)}")
    assert count_references(orders.integration, "order") == 0
    restore = page.get_by_role("button", name="Restore 2 references")
    expect(restore).to_be_visible()
    expect(page.locator("tr.unlinked")).to_have_count(3)

    restore.click()

    expect(page.locator(".toast").get_by_text("Restored 2 references.")).to_be_visible()
    expect(page.get_by_role("button", name="Restore 2 references")).to_have_count(0)
    expect(page.locator("tr.unlinked")).to_have_count(1)
    assert count_references(orders.integration, "order") == 2


def test_a_big_delete_all_runs_as_a_job_with_progress_then_restores_as_one(
    live_server, page: Page, orders, settings
):
    settings.REFDESK_JOB_THRESHOLD = 1  # two references make a "big" change here
    log_in(page, live_server, "anna", orders_url(orders))

    page.get_by_role("link", name="Delete all order references…").click()
    page.get_by_label("Type orders to confirm").fill("orders")
    page.get_by_role("button", name="Delete 2 references").click()

    status = page.get_by_role("status").filter(has_text="Delete all 2 order references")
    expect(status).to_contain_text("Queued")
    expect(status.get_by_role("progressbar")).to_be_visible()
    assert count_references(orders.integration, "order") == 2  # nothing until the worker runs

    run_worker()  # the page polls, sees it done and reloads with the result

    expect(page.locator(".toast").get_by_text("done (2 removed)")).to_be_visible()
    restore = page.get_by_role("button", name="Restore 2 references")
    expect(restore).to_be_visible()
    expect(page.locator("tr.unlinked")).to_have_count(3)

    restore.click()

    restoring = page.get_by_role("status").filter(has_text="Restore 2 order references")
    expect(restoring).to_contain_text("Queued")
    expect(page.get_by_role("button", name="Restore 2 references")).to_have_count(0)
    run_worker()
    expect(page.locator(".toast").get_by_text("done (2 new)")).to_be_visible()
    expect(page.locator("tr.unlinked")).to_have_count(1)
    assert count_references(orders.integration, "order") == 2


@pytest.mark.postgres  # a job held open beside the live server: a second writer at once
def test_while_a_job_writes_one_tab_the_others_are_edited_and_its_own_says_why(
    live_server, page: Page, orders, settings
):
    settings.REFDESK_JOB_THRESHOLD = 1  # two references make a "big" change here
    log_in(page, live_server, "anna", orders_url(orders, "customers"))
    job = services.start_delete_all_job(orders.integration, "order", orders.actor, 2)

    with job_held_open(job, orders.refs["5001"]):
        # Another tab of the integration: saved as usual, although the job never ends here.
        customer = RemoteId.objects.get(connection=orders.shop, remote_id="C-77").record
        row = page.locator(f"#ref-{customer.local_id}")
        row.get_by_role("button", name="Edit C-77").click()
        row.get_by_label("Fortnox id", exact=True).fill("K-78")
        row.get_by_label("Fortnox id", exact=True).press("Enter")
        expect(row.get_by_role("button", name="Edit C-77")).to_be_visible()
        expect(row).to_contain_text("K-78")

        # The job's own tab: refused within seconds, saying which change and where it is.
        page.get_by_role("tab", name=re.compile("^Orders")).click()
        row = group(page, orders, "5002")
        row.get_by_role("button", name="Edit 5002").click()
        row.get_by_label("Fortnox id", exact=True).fill("INV-99")
        row.get_by_label("Fortnox id", exact=True).press("Enter")
        message = row.get_by_role("alert")
        # The lock wait gives up after 4 s; a little more for the page on a busy machine.
        expect(message).to_contain_text(
            re.compile(
                r"Delete all 2 order references of Shopify → Fortnox by anna is running "
                r"\(\d+%\)\. Nothing was saved; try again when it has finished\."
            ),
            timeout=8_000,
        )
        expect(message.get_by_role("link", name="See its progress")).to_have_attribute(
            "href", f"/t/acme/jobs/{job.pk}/"
        )
        expect(row.get_by_label("Fortnox id", exact=True)).to_have_value("INV-99")
        assert target_of(orders, "5002") == "INV-2"

    assert services.count_references(orders.integration, "order") == 0


def test_at_800_px_every_action_is_within_reach(live_server, page: Page, orders):
    page.set_viewport_size({"width": 800, "height": 900})
    log_in(page, live_server, "anna", orders_url(orders))

    def assert_inside(locator):
        for index in range(locator.count()):
            box = locator.nth(index).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 800, box

    table = page.locator("#ref-table table")
    assert page.evaluate(
        "e => e.scrollWidth <= e.parentElement.clientWidth", table.element_handle()
    )
    assert_inside(page.locator("#ref-table td.actions button"))

    group(page, orders, "5001").get_by_role("button", name="Edit").click()
    save = group(page, orders, "5001").get_by_role("button", name="Save")
    expect(save).to_be_visible()
    assert_inside(group(page, orders, "5001").locator("input:visible, button:visible"))


def test_at_most_two_toasts_are_shown_the_oldest_go_first(live_server, page: Page, orders):
    log_in(page, live_server, "anna", orders_url(orders))
    for n in range(3):
        page.get_by_role("button", name="+ Add reference").click()
        form = page.get_by_role("region", name="Add order reference")
        form.get_by_label("Shopify id", exact=True).fill(f"80{n}")
        form.get_by_label("Fortnox id", exact=True).fill(f"INV-80{n}")
        form.get_by_role("button", name="Add reference").click()
        expect(page.locator(".toast").get_by_text(f"Linked 80{n} to INV-80{n}.")).to_be_visible()

    expect(page.locator(".toast:not(.is-leaving)")).to_have_count(2)
    expect(page.locator(".toast").get_by_text("Linked 800 to INV-800.")).to_have_count(0)

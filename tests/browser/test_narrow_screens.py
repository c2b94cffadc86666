"""Narrow windows in Chromium: at 800 px nothing on the References list, its inline edit or the
record page is cut off, and no column moves when a row turns into inputs."""

import json

import pytest
from playwright.sync_api import Page, expect

from records.audit import Actor
from records.custom_data import CustomDataInput, set_custom_data
from references.services import ReferenceInput, add_reference, edit_reference
from tests.factories import PASSWORD, make_reference

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NARROW = {"width": 800, "height": 900}
WIDE = {"width": 1280, "height": 900}

# Every visible control under `root` whose box leaves the window or a box that clips it (a
# scroll container included: a control you must scroll sideways to is cut off too).
CUT_OFF = """(root) => {
  const cut = [];
  const width = document.documentElement.clientWidth;
  const controls = root.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea');
  for (const el of controls) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || el.closest('.visually-hidden')) continue;
    let left = 0, right = width;
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (getComputedStyle(p).overflowX === 'visible') continue;
      const clip = p.getBoundingClientRect();
      left = Math.max(left, clip.left);
      right = Math.min(right, clip.right);
    }
    if (box.left < left - 1 || box.right > right + 1) {
      const name = (el.getAttribute('aria-label') || el.textContent || el.name || '').trim();
      cut.push(`${el.tagName} "${name}" at ${Math.round(box.left)}..${Math.round(box.right)}` +
               ` (visible ${Math.round(left)}..${Math.round(right)})`);
    }
  }
  return cut;
}"""

# Tables that need a sideways scroll inside their box.
WIDER_THAN_BOX = """(root) => [...root.querySelectorAll('.table-wrap')]
  .filter(wrap => wrap.scrollWidth > wrap.clientWidth + 1)
  .map(wrap => `${wrap.scrollWidth} px of table in ${wrap.clientWidth} px`)"""

HEADER_WIDTHS = """(table) => [...table.tHead.rows[0].cells]
  .map(cell => cell.getBoundingClientRect().width)"""

# Whether `word` is drawn on one line inside `root` (a word broken across lines has two boxes).
WORD_IS_WHOLE = """(root, word) => {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(word);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + word.length);
    return [...range.getClientRects()].filter(r => r.width > 0).length === 1;
  }
  throw new Error('not found: ' + word);
}"""


def log_in(page: Page, live_server, username: str, next_url: str):
    page.goto(f"{live_server.url}/login/?next={next_url}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}{next_url}")
    page.wait_for_load_state()


def assert_nothing_cut_off(page: Page, selector="main"):
    root = page.locator(selector).first
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    assert root.evaluate(WIDER_THAN_BOX) == []
    assert root.evaluate(CUT_OFF) == []


def orders_url(world):
    return f"/t/acme/integrations/{world.integration.pk}/references/orders/"


def group(page: Page, record):
    return page.locator(f"#ref-{record.local_id}")


def assert_same_widths(before, after):
    moved = [round(abs(a - b), 1) for a, b in zip(before, after, strict=True)]
    assert max(moved) <= 4, f"columns moved by {moved} px: {before} -> {after}"


@pytest.fixture
def orders(world):
    """Long-ish values: an email ref, a long SKU-like id, an unlinked row, an edited one."""
    world.linked = add_reference(
        world.integration,
        "order",
        ReferenceInput("5001000028", "C10010", "customer272@example.com", "Customer 9"),
        world.actor,
    )
    world.linked = edit_reference(
        world.integration,
        world.linked,
        ReferenceInput("5001000028", "C10011", "customer272@example.com", "Customer 9 AB"),
        world.actor,
        version=world.linked.version,
    )
    world.long = make_reference(
        world.integration,
        source_id="SKU-SUMMER-2025-LINEN-SHIRT-XL-NAVY",
        target_id="ART-000123456789",
        source_ref="Linen shirt, navy, XL",
        target_ref="Artikel 123456789",
    )
    world.unlinked = make_reference(world.integration, source_id="5001001470", source_ref="#1211")
    return world


def test_at_800_px_no_action_on_the_references_list_is_cut_off(live_server, page: Page, orders):
    page.set_viewport_size(NARROW)
    log_in(page, live_server, "anna", orders_url(orders))
    expect(group(page, orders.linked).get_by_role("button", name="Delete")).to_be_visible()
    assert_nothing_cut_off(page)

    # Edit: the four inputs, Save and Cancel
    group(page, orders.linked).get_by_role("button", name="Edit").click()
    expect(group(page, orders.linked).get_by_role("button", name="Save")).to_be_visible()
    assert_nothing_cut_off(page)
    # ... also with an error under the field
    group(page, orders.linked).get_by_label("Fortnox id", exact=True).fill("")
    group(page, orders.linked).get_by_role("button", name="Save").click()
    expect(group(page, orders.linked).get_by_text("Fortnox id is required")).to_be_visible()
    assert_nothing_cut_off(page)
    group(page, orders.linked).get_by_role("button", name="Cancel").click()

    # Link on an unlinked row
    group(page, orders.unlinked).get_by_role("button", name="Link").click()
    expect(group(page, orders.unlinked).get_by_label("Fortnox id", exact=True)).to_be_focused()
    assert_nothing_cut_off(page)
    group(page, orders.unlinked).get_by_role("button", name="Cancel").click()

    # History with its Revert buttons, and the delete question
    group(page, orders.linked).get_by_role("button", name="History").click()
    expect(
        group(page, orders.linked)
        .get_by_role("button", name="Revert to the values after this change")
        .first
    ).to_be_visible()
    assert_nothing_cut_off(page)
    group(page, orders.long).get_by_role("button", name="Delete").click()
    expect(group(page, orders.long).get_by_role("button", name="Delete reference")).to_be_visible()
    assert_nothing_cut_off(page)


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280px", "800px"])
@pytest.mark.parametrize("username", ["anna", "sven"], ids=["admin", "support"])
def test_no_column_moves_when_a_row_enters_edit_mode(
    live_server, page: Page, orders, viewport, username
):
    page.set_viewport_size(viewport)
    log_in(page, live_server, username, orders_url(orders))
    table = page.locator("#ref-table table.ref-list")
    shown = table.evaluate(HEADER_WIDTHS)

    for record, button in [(orders.linked, "Edit"), (orders.unlinked, "Link")]:
        group(page, record).get_by_role("button", name=button).click()
        expect(group(page, record).get_by_role("button", name="Save")).to_be_visible()
        assert_same_widths(shown, table.evaluate(HEADER_WIDTHS))
        group(page, record).get_by_role("button", name="Cancel").click()
        expect(group(page, record).get_by_role("button", name=button)).to_be_visible()

    group(page, orders.linked).get_by_role("button", name="History").click()
    expect(group(page, orders.linked).locator(".history")).to_be_visible()
    assert_same_widths(shown, table.evaluate(HEADER_WIDTHS))


@pytest.fixture
def record(world):
    record = make_reference(
        world.integration,
        source_id="5001010388",
        target_id="90212",
        source_ref="#2485",
        target_ref="Faktura 6",
    )
    value = {
        "deliveryInstructions": "Leave the parcel at the back door next to the green shed",
        "customerReferenceNumber": "ACME-2025-000012345-XL",
    }
    set_custom_data(
        record,
        [CustomDataInput("x-support", "delivery", "json", json.dumps(value), world.erp)],
        Actor.for_user(world.admin),
    )
    value["deliveryInstructions"] = "Ring twice, then leave it with the neighbour at number 12"
    record.refresh_from_db()
    set_custom_data(
        record,
        [CustomDataInput("x-support", "delivery", "json", json.dumps(value), world.erp)],
        Actor.for_user(world.admin),
    )
    return record


def test_at_800_px_the_record_page_cuts_nothing_off_and_breaks_no_word(
    live_server, page: Page, record
):
    page.set_viewport_size(NARROW)
    log_in(page, live_server, "anna", f"/t/acme/records/{record.local_id}/")

    references = page.locator("#remote-ids").get_by_role("link", name="Shopify -> Fortnox")
    expect(references).to_have_count(2)
    assert_nothing_cut_off(page)

    value = page.locator("#custom-data pre.value")
    for word in ['"customerReferenceNumber":', '"deliveryInstructions":']:
        assert value.evaluate(WORD_IS_WHOLE, word), f"{word} is broken across lines"
    sentence = page.locator("#history .history-sentence").first
    assert sentence.evaluate(WORD_IS_WHOLE, "neighbour"), "the history breaks a word"

    # Editing the entry: Save and Cancel in reach, and the columns stay where they were.
    table = page.locator("#custom-data table")
    shown = table.evaluate(HEADER_WIDTHS)
    page.locator("#custom-data").get_by_role("link", name="Edit").click()
    editing = page.locator("#custom-data tr.editing")
    expect(editing.get_by_role("button", name="Save")).to_be_visible()
    assert_same_widths(shown, table.evaluate(HEADER_WIDTHS))
    assert_nothing_cut_off(page)


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280px", "800px"])
def test_who_changed_a_row_shows_once(live_server, page: Page, orders, viewport):
    """Wide, in the By column; narrow, under the time (the By column gives way)."""
    page.set_viewport_size(viewport)
    log_in(page, live_server, "anna", orders_url(orders))
    row = group(page, orders.linked).locator("tr").first
    inline, column = row.locator(".by-inline"), row.locator(".col-by .by")
    if viewport == WIDE:
        expect(inline).to_be_hidden()
        expect(column).to_be_visible()
    else:
        expect(inline).to_be_visible()
        expect(column).to_be_hidden()

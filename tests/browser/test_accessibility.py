"""Accessibility and browser hygiene in Chromium, so a regression fails CI.

axe-core runs over the main pages and states (logged out, a tenant admin's pages, the inline
states of the References and record pages, the 403 and 404 pages) at 1280 px and, for a few,
800 px: no violation of WCAG 2.0-2.2 A/AA rules, nor of axe's best practices (heading order,
landmarks, one h1). A walk over every tenant GET route catches pages added later. Pages also
log no console error (Lighthouse's best practices: a missing favicon was one).

axe (tests/browser/vendor/axe.min.js, a test asset the app never serves) is evaluated through
the DevTools protocol, which the page's Content-Security-Policy does not govern: the pages are
checked under their real policy, as users get them (an injected inline <script> would be refused
by `script-src 'self'`, and bypass_csp would check a page that styles differently).
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from records.custom_data import CustomDataInput, set_custom_data
from records.jobs import start_job
from references.services import ReferenceInput, add_reference, delete_reference
from tests.factories import PASSWORD, MembershipFactory, make_reference
from tests.references.test_health import erp_only, shop_order
from tests.security.conftest import TenantObjects, kwarg_values
from tests.security.test_csp_browser import html_get_routes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": [
            "wcag2a",
            "wcag2aa",
            "wcag21a",
            "wcag21aa",
            "wcag22aa",
            "best-practice",
        ],
    },
    "resultTypes": ["violations"],
}
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 800, "height": 900}


def axe_violations(page: Page) -> list[dict]:
    """Run axe on the page as it is now (after htmx has settled)."""
    page.wait_for_load_state("networkidle")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    return page.evaluate("options => axe.run(document, options)", AXE_OPTIONS)["violations"]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(
            f"  [{violation['impact']}] {violation['id']}: {violation['help']} "
            f"({violation['helpUrl'].split('?')[0]})"
        )
        for node in violation["nodes"][:8]:
            target = " ".join(str(part) for part in node["target"])
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"      {target}  {node['html'][:140]}")
            if summary:
                lines.append(f"        {summary[:300]}")
        if len(violation["nodes"]) > 8:
            lines.append(f"      ... and {len(violation['nodes']) - 8} more")
    return "\n".join(lines)


def assert_accessible(page: Page, state: str):
    violations = axe_violations(page)
    width = page.viewport_size["width"] if page.viewport_size else "?"
    assert not violations, (
        f"axe found {len(violations)} violation(s) on {state} at {width} px ({page.url}):\n"
        + describe(violations)
    )


@pytest.fixture
def console_errors(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of the page, as Lighthouse's best practices see
    them (a 404 for a favicon, a CSP refusal, a script error)."""
    errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            errors.append(f"{message.text} ({page.url})") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(f"page error: {error} ({page.url})"))
    return errors


def log_in(page: Page, live_server, username: str, next_url: str = "/"):
    page.goto(f"{live_server.url}/login/?next={next_url}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")


@pytest.fixture
def acme(world):
    """References linked, unlinked, lost and added through the engine (so they have history),
    a record with custom data, a job, and a probable duplicate for Health."""
    world.linked = make_reference(
        world.integration, source_id="5001", target_id="INV-1", source_ref="#1001"
    )
    make_reference(world.integration, source_id="5002", target_id="INV-2", source_ref="#1002")
    make_reference(world.integration, source_id="6003")  # never linked
    lost = make_reference(world.integration, source_id="5004", target_id="INV-4")
    world.batch = delete_reference(world.integration, lost, world.actor)
    add_reference(world.integration, "order", ReferenceInput("5005", "INV-5"), world.actor)
    # A Fortnox-only order with the number of an unlinked Shopify one: a probable duplicate.
    shop_order(world, "6006", "1006")
    erp_only(world, "INV-6", "1006")
    make_reference(world.integration, "customer", source_id="C-77", target_id="K-77")
    set_custom_data(
        world.linked,
        [CustomDataInput("x-notes", "comment", "string", "Call before delivery")],
        world.actor,
    )
    world.job = start_job(
        "restore",
        tenant=world.tenant,
        actor=world.actor,
        integration=world.integration,
        record_type="order",
        params={"batch_id": world.batch.pk},
        total=1,
        description="Restore INV-4",
    )
    return world


def references_url(world, entity="orders"):
    return f"/t/acme/integrations/{world.integration.pk}/references/{entity}/"


def health_url(world, suffix=""):
    return f"/t/acme/integrations/{world.integration.pk}/health/{suffix}"


PAGES = {
    "tenant home": lambda w: "/t/acme/",
    "references": references_url,
    "references, linked only": lambda w: references_url(w) + "?linked=linked",
    "references, unlinked only": lambda w: references_url(w) + "?linked=unlinked",
    "references, no match": lambda w: references_url(w) + "?q=nothing-like-this",
    "record": lambda w: f"/t/acme/records/{w.linked.local_id}/",
    "records index": lambda w: "/t/acme/records/",
    "records list": lambda w: "/t/acme/records/order/",
    "health overview": lambda w: health_url(w),
    "health: lost links": lambda w: health_url(w, "orders/?finding=lost"),
    "health: duplicates": lambda w: health_url(w, "orders/?finding=duplicates"),
    "reconcile": lambda w: health_url(w, "orders/reconcile/"),
    "import": lambda w: references_url(w) + "import/",
    "delete all": lambda w: references_url(w) + "delete-all/",
    "jobs": lambda w: "/t/acme/jobs/",
    "job": lambda w: f"/t/acme/jobs/{w.job.pk}/",
    "connections": lambda w: "/t/acme/connections/",
    "404": lambda w: "/t/acme/integrations/999999/references/orders/",
}
NARROW_PAGES = {"tenant home", "references", "record", "health: lost links"}


@pytest.mark.parametrize(
    ("state", "viewport"),
    [(name, WIDE) for name in PAGES] + [(name, NARROW) for name in sorted(NARROW_PAGES)],
    ids=lambda value: value if isinstance(value, str) else f"{value['width']}px",
)
def test_page_has_no_accessibility_violations(
    live_server, page: Page, acme, console_errors, state, viewport
):
    page.set_viewport_size(viewport)
    log_in(page, live_server, "anna")
    response = page.goto(f"{live_server.url}{PAGES[state](acme)}")
    assert_accessible(page, state)
    if state == "404":
        assert response.status == 404
        # Chromium logs the document's own 404 status as a console error; nothing else.
        console_errors[:] = [e for e in console_errors if "status of 404" not in e]
    assert console_errors == []


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280px", "800px"])
def test_login_page(live_server, page: Page, world, console_errors, viewport):
    page.set_viewport_size(viewport)
    page.goto(f"{live_server.url}/login/")
    assert_accessible(page, "login")

    page.get_by_label("Username").fill("anna")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page, "login with an error")
    assert console_errors == []


def test_tenant_picker(live_server, page: Page, world):
    MembershipFactory(user=world.admin, tenant=world.other_tenant, role="support")
    log_in(page, live_server, "anna")
    expect(page.get_by_role("heading", name="Choose a tenant")).to_be_visible()
    assert_accessible(page, "tenant picker")


def test_403_page(live_server, page: Page, acme):
    log_in(page, live_server, "sven")
    response = page.goto(f"{live_server.url}{references_url(acme)}delete-all/")
    assert response.status == 403
    assert_accessible(page, "403")


def test_references_states(live_server, page: Page, acme, console_errors):
    """The inline states of the References page: edit row, add form with a conflict, history,
    delete confirmation and its toast."""
    log_in(page, live_server, "anna", references_url(acme))
    group = page.locator(f"#ref-{acme.linked.local_id}")

    group.get_by_role("button", name="Edit 5001").click()
    expect(group.get_by_label("Fortnox id", exact=True)).to_be_focused()
    assert_accessible(page, "references, edit row open")
    group.get_by_label("Fortnox id", exact=True).fill("INV-2")
    group.get_by_label("Fortnox id", exact=True).press("Enter")
    expect(group.get_by_text(re.compile("INV-2 is already linked"))).to_be_visible()
    assert_accessible(page, "references, edit row with a conflict")
    group.get_by_label("Fortnox id", exact=True).press("Escape")
    expect(group.get_by_role("button", name="Edit 5001")).to_be_visible()

    page.get_by_role("button", name="+ Add reference").click()
    form = page.get_by_role("region", name="Add order reference")
    form.get_by_label("Shopify id", exact=True).fill("7001")
    form.get_by_label("Fortnox id", exact=True).fill("INV-1")
    form.get_by_role("button", name="Add reference").click()
    expect(form.get_by_text(re.compile("INV-1 is already linked"))).to_be_visible()
    assert_accessible(page, "references, add form with a conflict")
    form.get_by_role("button", name="Cancel").click()

    added = page.locator("tbody", has=page.get_by_role("button", name="History of 5005"))
    added.get_by_role("button", name="History of 5005").click()
    expect(added.get_by_role("heading", name=re.compile("^History of order"))).to_be_visible()
    assert_accessible(page, "references, history panel open")

    page.get_by_role("button", name="Delete reference 5002").click()
    expect(page.get_by_role("button", name="Delete reference", exact=True)).to_be_visible()
    assert_accessible(page, "references, delete confirmation")
    page.get_by_role("button", name="Delete reference", exact=True).click()
    expect(page.locator(".toast").get_by_role("button", name="Undo")).to_be_visible()
    assert_accessible(page, "references, toast with Undo")
    # A refused form is answered 409/422 on purpose (htmx swaps it in); Chromium logs the status.
    refused = re.compile(r"status of (409|422) ")
    assert [e for e in console_errors if not refused.search(e)] == []


def test_references_states_at_800_px(live_server, page: Page, acme):
    page.set_viewport_size(NARROW)
    log_in(page, live_server, "anna", references_url(acme))
    group = page.locator(f"#ref-{acme.linked.local_id}")
    group.get_by_role("button", name="Edit 5001").click()
    expect(group.get_by_label("Fortnox id", exact=True)).to_be_focused()
    assert_accessible(page, "references, edit row open")
    group.get_by_label("Fortnox id", exact=True).press("Escape")
    group.get_by_role("button", name="History of 5001").click()
    expect(group.get_by_role("heading", name=re.compile("^History of order"))).to_be_visible()
    assert_accessible(page, "references, history panel open")


def test_record_page_states(live_server, page: Page, acme):
    """The record page's custom data: the add form with errors, then an entry edited inline with
    its errors and the confirmation box of a connector's entry."""
    set_custom_data(
        acme.linked,
        [CustomDataInput("fortnox-invoices", "voucherSeries", "string", "B", acme.erp)],
        acme.actor,
    )
    log_in(page, live_server, "anna", f"/t/acme/records/{acme.linked.local_id}/")
    form = page.get_by_role("form", name="Add custom data")
    form.get_by_label("Module").fill("support")
    form.get_by_label("Key").fill("retries")
    form.get_by_label("Type").select_option("integer")
    form.get_by_label("Value").fill("three")
    form.get_by_role("button", name="Add entry").click()
    expect(form.get_by_text("Value must be a whole number, e.g. 42.")).to_be_visible()
    assert_accessible(page, "record, add custom data with errors")

    page.locator("#custom-data tr", has_text="voucherSeries").get_by_role(
        "link", name="Edit"
    ).click()
    editing = page.locator("#custom-data tr.editing")
    editing.get_by_label("Type of").select_option("integer")
    editing.get_by_label("Value of").fill("C")
    editing.get_by_role("button", name="Save").click()
    expect(editing.get_by_text("Tick the box to confirm the change.")).to_be_visible()
    assert_accessible(page, "record, custom data edit row with errors")


def test_import_preview(live_server, page: Page, acme):
    log_in(page, live_server, "anna", references_url(acme) + "import/")
    page.get_by_label("CSV file", exact=True).set_input_files(
        files=[
            {
                "name": "orders.csv",
                "mimeType": "text/csv",
                "buffer": b"source_id;target_id\r\n5001;INV-1\r\n6003;INV-3\r\n;INV-X\r\n",
            }
        ]
    )
    page.get_by_role("button", name="Preview import").click()
    expect(page.get_by_role("heading", name="Preview of orders.csv")).to_be_visible()
    assert_accessible(page, "import preview")


def test_reconcile_report_and_preview(live_server, page: Page, acme):
    log_in(page, live_server, "anna", health_url(acme, "orders/reconcile/"))
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "fortnox.csv", "mimeType": "text/csv", "buffer": b"Id\nINV-1\nINV-9\n"}]
    )
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("link", name=re.compile("^Gone remotely"))).to_be_visible()
    assert_accessible(page, "reconcile report")
    page.get_by_role("checkbox", name=re.compile("^Unlink .* gone from")).check()
    page.get_by_role("button", name="Preview the plan…").click()
    expect(page.get_by_role("button", name=re.compile("^Apply"))).to_be_visible()
    assert_accessible(page, "reconcile fix preview")


def test_health_fix_preview(live_server, page: Page, acme):
    log_in(page, live_server, "anna", health_url(acme, "orders/?finding=lost"))
    page.get_by_role("button", name="Put back the old link: 5004").click()
    expect(page.get_by_role("heading", name="Preview: Put back the old link")).to_be_visible()
    assert_accessible(page, "health fix preview")


def test_every_tenant_page_has_no_accessibility_violations(
    live_server, page: Page, world, console_errors
):
    """Every GET page of a tenant (from the URL resolver, as the CSP walk opens them), so a page
    added tomorrow is checked tomorrow. Violations of all pages are reported together."""
    objects = TenantObjects(world.tenant, world.integration, world.actor, "acme")
    log_in(page, live_server, "anna")
    found = []
    for url in html_get_routes(kwarg_values(objects)):
        page.goto(f"{live_server.url}{url}")
        violations = axe_violations(page)
        if violations:
            found.append(f"{url}:\n{describe(violations)}")
    assert not found, "axe found violations:\n" + "\n".join(found)
    assert console_errors == []


def test_the_check_itself_sees_a_violation(live_server, page: Page, world):
    """The canary: if axe stopped running (a bad tag, a broken vendored file), every test above
    would pass. Pale text through the CSSOM (allowed by the CSP) must be reported."""
    page.goto(f"{live_server.url}/login/")
    page.evaluate("document.querySelector('h1').style.color = '#d0d0d0'")
    assert "color-contrast" in [v["id"] for v in axe_violations(page)]

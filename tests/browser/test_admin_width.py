"""The admin's Connections and Audit entries lists fit a 1280 px window: no horizontal scrollbar.

Beside the admin's sidebar and the filters a changelist has about 630 px. The data here is the
wide kind: 32-hex ids, actors `connection/<hex id>`, long names, summaries and remote ids.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from integrations.models import Connector
from records.models import AuditEntry
from tests.factories import (
    PASSWORD,
    ConnectionFactory,
    ConnectorFactory,
    RecordFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280
LONG_REMOTE_ID = "WAREHOUSE-LOCATION-0000000000000000000000000000000000001"


@pytest.fixture
def wide_data(world):
    reseller = world.tenant.reseller
    staff = UserFactory(username="rita", is_staff=True)
    reseller.staff.add(staff)
    UserFactory(username="root", is_staff=True, is_superuser=True)
    second = TenantFactory(reseller=reseller, name="Bergström Handel & Logistik AB", slug="bh")
    api = ConnectorFactory(code="api", name="API connector", category=Connector.Category.API)
    warehouse = ConnectionFactory(tenant=world.tenant, connector=api, name="Warehouse API")
    ConnectionFactory(
        tenant=second,
        connector__code="woocommerce",
        connector__name="WooCommerce",
        name="WooCommerce Outlet Stockholm Södermalm",
    )
    for number in range(20):
        record = RecordFactory(tenant=world.tenant)
        actor = f"connection/{warehouse.connection_id}" if number % 2 else "user/anna"
        AuditEntry.objects.create(
            tenant=world.tenant,
            created_at=timezone.now(),
            actor=actor,
            action=AuditEntry.Action.REMOTE_ID_SET,
            record=record,
            local_id=record.local_id,
            record_type=record.record_type,
            connection=warehouse,
            before={"remote_id": None},
            after={"remote_id": LONG_REMOTE_ID},
            summary=(
                f"Set remote id {LONG_REMOTE_ID} of order {record.local_id} in Warehouse API "
                "after the nightly synchronisation of every warehouse location"
            ),
        )
    return world


def log_in(page: Page, base_url: str, username: str):
    page.goto(f"{base_url}/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="refdesk administration")).to_be_visible()


def horizontal_overflow(page: Page) -> dict:
    """How far the page, and the results table inside its own scrolling box, overflow."""
    return page.evaluate(
        """() => {
            const results = document.querySelector('#changelist .results');
            return {
                page: document.documentElement.scrollWidth - window.innerWidth,
                results: results.scrollWidth - results.clientWidth,
            };
        }"""
    )


@pytest.mark.parametrize("username", ["rita", "root"])
def test_connections_and_audit_entries_fit_1280_px(live_server, page: Page, wide_data, username):
    page.set_viewport_size({"width": WIDTH, "height": 800})
    log_in(page, live_server.url, username)

    page.goto(f"{live_server.url}/admin/integrations/connection/")
    expect(page.get_by_role("link", name="WooCommerce Outlet Stockholm Södermalm")).to_be_visible()
    connection_id = wide_data.shop.connection_id
    short = page.locator(f"abbr[title='{connection_id}']")
    expect(short).to_have_text(f"{connection_id[:8]}…")
    assert horizontal_overflow(page) == {"page": 0, "results": 0}

    page.goto(f"{live_server.url}/admin/records/auditentry/")
    expect(page.locator("#result_list tbody tr")).to_have_count(20)
    expect(page.locator("#result_list td.field-actor_name").first).to_have_text("Warehouse API")
    assert horizontal_overflow(page) == {"page": 0, "results": 0}

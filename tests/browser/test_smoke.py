"""The browser path, proven end to end: log in through the real page in Chromium."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_log_in_and_see_the_tenant_home(live_server, page: Page, world):
    page.goto(f"{live_server.url}/t/acme/")

    expect(page).to_have_url(f"{live_server.url}/login/?next=/t/acme/")
    page.get_by_label("Username").fill("anna")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(f"{live_server.url}/t/acme/")
    expect(page.get_by_text("Shopify -> Fortnox")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

"""In Chromium, no page breaks the Content-Security-Policy, and htmx requests carry the CSRF token.

Every GET route of the project (from the URL resolver) is opened as a tenant admin with the
tenant's own objects; the admin site as reseller staff. Chromium reports each CSP violation as
a console error ("Refused to ... because it violates the following Content Security Policy").
"""

import pytest
from django.contrib import admin
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD

from .conftest import kwarg_values
from .urlwalk import project_routes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class BrowserProblems:
    def __init__(self, page: Page):
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append(f"page error: {error}"))
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', function (e) {"
            "  console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);"
            "});"
        )

    def _console(self, message):
        if message.type == "error" and (
            "Content Security Policy" in message.text or "CSP violation" in message.text
        ):
            self.messages.append(message.text)


def log_in(page: Page, base_url: str, username: str):
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")


# Routes that answer with a file download (Content-Disposition: attachment): no page to check.
DOWNLOADS = {"references:export", "references:health-export", "references:reconcile-sample"}


def html_get_routes(values):
    urls = []
    for route in project_routes():
        if route.is_admin or route.is_api or route.name == "logout" or route.name in DOWNLOADS:
            continue
        urls.append(route.fill(values))
    return urls


def test_no_page_violates_the_content_security_policy(live_server, page: Page, tenants):
    problems = BrowserProblems(page)
    log_in(page, live_server.url, "anna")
    visited = []
    for url in html_get_routes(kwarg_values(tenants.a)):
        page.goto(f"{live_server.url}{url}")
        page.wait_for_load_state("networkidle")
        visited.append(url)
    page.goto(f"{live_server.url}/login/")  # logged in: redirects home

    assert "/t/acme/" in visited
    assert problems.messages == [], f"CSP problems on {visited}: {problems.messages}"


def test_the_admin_site_respects_the_content_security_policy(live_server, page: Page, tenants):
    problems = BrowserProblems(page)
    log_in(page, live_server.url, "rita")
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        urls.append(reverse("admin:{}_{}_add".format(*info)))
    for obj in [tenants.tenant, tenants.shop, tenants.integration]:
        urls.append(reverse(f"admin:integrations_{obj._meta.model_name}_change", args=[obj.pk]))
    for url in urls:
        page.goto(f"{live_server.url}{url}")
        page.wait_for_load_state("networkidle")

    assert problems.messages == [], problems.messages


def test_htmx_requests_carry_the_csrf_token(live_server, page: Page, tenants):
    """base.html puts the token in hx-headers on <body>: an htmx POST passes the CSRF check."""
    log_in(page, live_server.url, "anna")
    page.goto(f"{live_server.url}/t/acme/")
    sent_headers = []
    page.on(
        "request",
        lambda request: sent_headers.append(request.headers) if request.method == "POST" else None,
    )

    # An htmx POST from the page itself (logout is the one write every page has).
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.evaluate("htmx.ajax('POST', '/logout/', {source: document.body, swap: 'none'})")

    assert posted.value.status != 403
    assert sent_headers and sent_headers[0].get("x-csrftoken")
    assert sent_headers[0].get("hx-request") == "true"
    page.goto(f"{live_server.url}/t/acme/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/t/acme/")


def test_the_api_docs_page_works_under_its_own_narrow_policy(live_server, page: Page, tenants):
    problems = BrowserProblems(page)
    page.goto(f"{live_server.url}/api/v1/docs")
    expect(page.get_by_text("refdesk API").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert problems.messages == [], problems.messages

"""The OpenAPI schema and the interactive docs, which must work with no internet."""

import re

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_describes_every_endpoint_and_basic_auth():
    schema = Client().get("/api/v1/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/v1/{record_type}/by-remote-id",
        "/api/v1/{record_type}/lookup",
        "/api/v1/{record_type}/batch",
        "/api/v1/{record_type}",
        "/api/v1/{record_type}/{local_id}",
        "/api/v1/{record_type}/{local_id}/customdata",
    }
    assert schema["components"]["securitySchemes"]["ConnectionKeyAuth"]["scheme"] == "basic"
    put = schema["paths"]["/api/v1/{record_type}/{local_id}"]["put"]
    assert {"200", "403", "404", "409", "422"} <= set(put["responses"])


def test_the_docs_page_references_no_external_host():
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    html = response.text
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "cdn" not in html.lower()
    assert '"validatorUrl": null' in html


@pytest.mark.browser
def test_the_docs_render_offline_under_the_sites_csp(live_server, page: Page):
    outside, violations = [], []

    def only_this_server(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{live_server.url}/api/v1/docs")
    expect(page.get_by_role("heading", name=re.compile("refdesk API"))).to_be_visible()
    expect(page.get_by_text("/api/v1/{record_type}/by-remote-id")).to_be_visible()
    assert outside == []
    assert violations == []

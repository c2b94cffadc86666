"""Roles on every write route, and CSRF on every HTML write.

ROUTE_ROLES says, for every tenant route, who may write through it. A new route that is not in
the table fails `test_every_tenant_route_has_a_declared_role`, so nobody can add a write route
without deciding (and testing) who may use it.
"""

import json

import pytest
from django.test import Client

from .conftest import WRITE_PAYLOAD, changed_tables, database_fingerprint, kwarg_values
from .urlwalk import project_routes, tenant_routes

pytestmark = pytest.mark.django_db

READ = "read"  # no write method at all
WRITE = "write"  # support staff and tenant admins may write (add, edit)
ADMIN = "admin"  # only tenant admins may write (delete all, import, ...)

ROUTE_ROLES = {
    "tenant-home": READ,
    "integrations:connections": READ,
    "integrations:rotate-key": ADMIN,
    "records:list": READ,
    "records:detail": READ,
    "records:index": READ,
    "records:custom-data-item": READ,
    "records:custom-data-add": ADMIN,
    "records:custom-data-edit": ADMIN,
    "records:custom-data-delete": ADMIN,
    # Retry sync (issue 22): puts records back into the feed; its preview is admin-only too.
    "records:retry-sync": ADMIN,
    "records:batch-retry-sync": ADMIN,
    "references:retry-sync": ADMIN,
    # Jobs: everyone on the tenant sees them; they are started from the pages that write.
    "records:jobs": READ,
    "records:job": READ,
    # Backfill (issue 6): support may look at suggestions and export; import and accept are admin.
    "references:import": ADMIN,
    "references:import-apply": ADMIN,
    "references:backfill-undo": ADMIN,
    "references:suggestions": READ,
    "references:suggestions-accept": ADMIN,
    "references:export": READ,
    # References page (issue 3)
    "references:list": READ,
    "references:row": READ,
    "references:history": READ,
    "references:add": WRITE,
    "references:edit": WRITE,
    "references:revert": WRITE,
    "references:delete": ADMIN,
    "references:delete_all": ADMIN,
    "references:restore": ADMIN,
    # Health (issue 12): support sees every finding and report; only admins fix or upload.
    "references:health-overview": READ,
    "references:health": READ,
    "references:health-export": READ,
    "references:health-fix": ADMIN,
    # Refresh a duplicates scan: computes, changes no reference.
    "references:health-scan": WRITE,
    "references:reconcile": ADMIN,
    "references:reconcile-fix": ADMIN,
    "references:reconcile-sample": READ,
}

WRITE_METHODS = ["post", "put", "patch", "delete"]
TENANT_ROUTES = tenant_routes()


def write(client, method, url):
    if method == "post":
        return client.post(url, WRITE_PAYLOAD)
    return getattr(client, method)(url, json.dumps(WRITE_PAYLOAD), content_type="application/json")


def test_every_tenant_route_has_a_declared_role():
    undeclared = sorted(r.name for r in TENANT_ROUTES if r.name not in ROUTE_ROLES)
    assert not undeclared, (
        f"Declare who may write through {undeclared} in ROUTE_ROLES "
        "(tests/security/test_roles_csrf.py): read, write (support and admin) or admin."
    )


@pytest.mark.parametrize(
    "route", [r for r in TENANT_ROUTES if ROUTE_ROLES.get(r.name) == READ], ids=str
)
@pytest.mark.parametrize("who", ["admin", "support"])
def test_read_only_pages_accept_no_write(client, tenants, route, who):
    client.force_login(tenants.admin if who == "admin" else tenants.support)
    url = route.fill(kwarg_values(tenants.a))
    before = database_fingerprint()
    for method in WRITE_METHODS:
        response = write(client, method, url)
        assert response.status_code in (403, 405), f"{method.upper()} {url}: {response.status_code}"
    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize(
    "route", [r for r in TENANT_ROUTES if ROUTE_ROLES.get(r.name) == ADMIN], ids=str
)
def test_support_staff_cannot_use_admin_only_actions(support_client, tenants, route):
    url = route.fill(kwarg_values(tenants.a))
    before = database_fingerprint()
    for method in WRITE_METHODS:
        response = write(support_client, method, url)
        assert response.status_code in (403, 405), f"{method.upper()} {url}: {response.status_code}"
    assert changed_tables(before, database_fingerprint()) == {}


# --- CSRF -------------------------------------------------------------------------------


def html_routes():
    return [route for route in project_routes() if not route.is_api]


def test_no_html_view_is_csrf_exempt():
    exempt = [str(route) for route in html_routes() if getattr(route.callback, "csrf_exempt", 0)]
    assert exempt == []


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=str)
def test_every_html_write_without_the_token_is_refused(tenants, route):
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenants.admin)
    url = route.fill(kwarg_values(tenants.a))
    before = database_fingerprint()
    for method in WRITE_METHODS:
        response = write(client, method, url)
        assert response.status_code == 403, f"{method.upper()} {url}: {response.status_code}"
        assert b"CSRF" in response.content
    assert changed_tables(before, database_fingerprint()) == {}


def test_log_in_and_log_out_need_the_token(tenants):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "anna", "password": "x"})
    assert response.status_code == 403
    client.force_login(tenants.admin)
    assert client.post("/logout/").status_code == 403
    assert client.get("/t/acme/").status_code == 200  # still logged in


def test_a_write_with_the_token_from_the_page_passes_the_check(tenants):
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenants.admin)
    page = client.get("/t/acme/")
    token = page.text.split('"X-CSRFToken": "')[1].split('"')[0]  # base.html's hx-headers
    response = client.post("/logout/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302

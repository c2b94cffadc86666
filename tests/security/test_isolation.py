"""Tenant isolation on every route of the project, read from the URL resolver.

For every route under /t/<tenant_slug>/ and every method, a user of tenant A who points the URL
at tenant B (B's slug, or A's slug with B's object ids) gets a 404 (or 405 for a method the
route does not accept), sees none of B's ids, and nothing in the database changes. Anonymous
visitors are sent to the log-in page; reseller staff without a membership get 404s. The admin
site is walked the same way for reseller staff and another reseller's objects.
"""

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from integrations.models import Connection, Connector, Integration, Membership, Reseller, Tenant
from records.models import AuditEntry, Batch, BatchChange, CustomData, Job, Record, RemoteId

from .conftest import SECRET, WRITE_PAYLOAD, changed_tables, database_fingerprint, kwarg_values
from .urlwalk import Route, project_routes, tenant_routes

pytestmark = pytest.mark.django_db

METHODS = ["get", "post", "put", "patch", "delete"]
# Kwargs that name a kind of thing, not one tenant's object: swapping them cannot cross tenants.
VOCABULARY_KWARGS = {"tenant_slug", "entity", "record_type"}
TENANT_ROUTES = tenant_routes()


def request(client, method: str, url: str, **extra):
    if method in ("put", "patch", "delete"):
        return getattr(client, method)(
            url, json.dumps(WRITE_PAYLOAD), content_type="application/json", **extra
        )
    if method == "post":
        return client.post(url, WRITE_PAYLOAD, **extra)
    return client.get(url, **extra)


def assert_hidden(client, route: Route, url: str):
    for method in METHODS:
        response = request(client, method, url)
        assert response.status_code in (404, 405), (
            f"{method.upper()} {url} ({route}) answered {response.status_code}, not 404"
        )
        assert SECRET not in response.content.decode(errors="replace"), (
            f"{method.upper()} {url} ({route}) shows tenant B's data"
        )


def test_the_walker_finds_the_tenant_pages():
    names = {route.name for route in TENANT_ROUTES}
    assert {"tenant-home", "records:list", "records:detail"} <= names


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=str)
def test_another_tenants_slug_is_a_404_for_every_method(admin_client, tenants, route):
    url = route.fill(kwarg_values(tenants.b))
    before = database_fingerprint()

    assert_hidden(admin_client, route, url)

    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize(
    "route",
    [r for r in TENANT_ROUTES if set(r.kwarg_names) - VOCABULARY_KWARGS],
    ids=str,
)
@pytest.mark.parametrize("who", ["admin", "support"])
def test_another_tenants_ids_under_our_slug_are_a_404(client, tenants, route, who):
    """For support too, on admin-only routes: the object is looked up before the role."""
    client.force_login(tenants.admin if who == "admin" else tenants.support)
    url = route.fill(kwarg_values(tenants.b, tenant_slug=tenants.tenant.slug))
    before = database_fingerprint()

    assert_hidden(client, route, url)

    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize(
    "route",
    [r for r in TENANT_ROUTES if len(set(r.kwarg_names) - VOCABULARY_KWARGS) > 1],
    ids=str,
)
@pytest.mark.parametrize("who", ["admin", "support"])
def test_one_foreign_id_among_our_own_is_a_404(client, tenants, route, who):
    """E.g. our record with the other tenant's custom data id: the child is checked too."""
    client.force_login(tenants.admin if who == "admin" else tenants.support)
    ours = kwarg_values(tenants.a)
    theirs = kwarg_values(tenants.b)
    before = database_fingerprint()
    for name in set(route.kwarg_names) - VOCABULARY_KWARGS:
        url = route.fill({**ours, name: theirs[name]})
        assert_hidden(client, route, url)
    assert changed_tables(before, database_fingerprint()) == {}


# Ids in the URL's own format that name nothing at all.
MISSING = {
    "local_id": "0" * 32,
    "connection_id": "f" * 32,
    "integration_id": 2**31 - 1,
    "batch_id": 2**31 - 1,
    "job_id": 2**31 - 1,
    "custom_data_id": 2**31 - 1,
    "entry_id": 2**31 - 1,
}


@pytest.mark.parametrize(
    "route", [r for r in TENANT_ROUTES if set(r.kwarg_names) & set(MISSING)], ids=str
)
@pytest.mark.parametrize("who", ["admin", "support"])
def test_an_id_that_names_nothing_is_a_404_for_everyone(client, tenants, route, who):
    """As README promises: no 403 that would tell a support user the object exists."""
    client.force_login(tenants.admin if who == "admin" else tenants.support)
    ours = kwarg_values(tenants.a)
    before = database_fingerprint()
    for name in set(route.kwarg_names) & set(MISSING):
        url = route.fill({**ours, name: MISSING[name]})
        assert_hidden(client, route, url)
    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=str)
def test_our_own_pages_never_show_the_other_tenant(admin_client, tenants, route):
    url = route.fill(kwarg_values(tenants.a))
    response = admin_client.get(url)
    assert response.status_code in (200, 302, 405), f"GET {url} answered {response.status_code}"
    if response.streaming:  # e.g. the CSV export
        assert SECRET not in b"".join(response.streaming_content).decode()
    else:
        assert SECRET not in response.text


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=str)
def test_anonymous_visitors_are_sent_to_log_in(client, tenants, route):
    url = route.fill(kwarg_values(tenants.a))
    before = database_fingerprint()
    for method in METHODS:
        response = request(client, method, url)
        if response.status_code == 405:
            continue
        assert response.status_code == 302, f"{method.upper()} {url}: {response.status_code}"
        assert response["Location"].startswith("/login/?next=")
    assert changed_tables(before, database_fingerprint()) == {}


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=str)
def test_reseller_staff_without_a_role_get_404s(client, tenants, route):
    client.force_login(tenants.reseller_staff)
    url = route.fill(kwarg_values(tenants.a))
    before = database_fingerprint()

    assert_hidden(client, route, url)

    assert changed_tables(before, database_fingerprint()) == {}


def test_every_route_is_under_a_tenant_or_known_to_be_global():
    """A new top-level route must be tenant-scoped or be listed here deliberately."""
    global_routes = {"home", "login", "logout", "favicon"}
    others = [
        route
        for route in project_routes()
        if not route.is_admin and not route.is_api and route not in TENANT_ROUTES
    ]
    assert {route.name for route in others} <= global_routes, others


# --- the admin site: reseller staff and another reseller's objects ------------------------


def other_reseller_objects(tenants) -> dict:
    """For each model in the admin: an object of tenant B (another reseller)."""
    b = tenants.b
    return {
        Reseller: tenants.other_tenant.reseller,
        Tenant: tenants.other_tenant,
        Membership: Membership.objects.get(user=tenants.outsider),
        Connection: b.integration.source,
        Integration: b.integration,
        Record: b.linked,
        RemoteId: RemoteId.objects.for_tenant(b.tenant).filter(record=b.linked).first(),
        Batch: b.batch,
        Job: b.job,
        BatchChange: BatchChange.objects.for_tenant(b.tenant).first(),
        AuditEntry: b.audit_entry,
        CustomData: b.custom_data,
        Connector: Connector.objects.first(),
        Group: Group.objects.get_or_create(name="Some group")[0],
        tenants.outsider.__class__: tenants.outsider,
    }


# Not owned by any tenant: every reseller's staff may read it, only superusers change it.
SHARED_CATALOGUE = {Connector}


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label_lower)
def test_reseller_staff_cannot_reach_another_resellers_objects_in_the_admin(client, tenants, model):
    client.force_login(tenants.reseller_staff)
    objects = other_reseller_objects(tenants)
    assert model in objects, (
        f"{model._meta.label} is in the admin: add one of tenant B's objects for it to "
        "other_reseller_objects() in tests/security/test_isolation.py"
    )
    obj = objects[model]
    info = (model._meta.app_label, model._meta.model_name)
    before = database_fingerprint()
    for view in ("change", "delete", "history"):
        url = reverse("admin:{}_{}_{}".format(*info, view), args=[obj.pk])
        for method in ("get", "post"):
            response = getattr(client, method)(url, {"post": "yes", "name": "hacked"})
            if model in SHARED_CATALOGUE and (
                view == "history" or (method, view) == ("get", "change")
            ):
                assert response.status_code == 200  # read-only for reseller staff
                continue
            assert response.status_code in (302, 403, 404), (
                f"{method.upper()} {url}: {response.status_code}"
            )
            if response.status_code == 302:
                assert response["Location"] == reverse("admin:index"), response["Location"]
    changelist = client.get(reverse("admin:{}_{}_changelist".format(*info)))
    assert changelist.status_code in (200, 403)
    assert SECRET not in changelist.text, f"{model._meta.label} changelist shows tenant B"
    assert changed_tables(before, database_fingerprint()) == {}

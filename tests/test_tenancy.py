"""Tenancy by construction: every query of a tenant-owned model starts from `for_tenant`.

Default managers are not scoped, so a forgotten `for_tenant` would show one tenant's rows to
another. This scan reads the app's source and fails on any `<TenantOwnedModel>.objects` whose
first call is not `.for_tenant(...)`, except:

- creating rows: `create(...)` and `bulk_create(...)` read nothing (each row carries the tenant
  it is given), and `get_or_create(tenant=...)` / `update_or_create(tenant=...)` name it;
- `.none()`, which reads nothing (a form field's queryset before the view scopes it);
- a queryset handed to TenantMixin's `self.scoped(...)` or `self.get_object_or_404(...)`,
  which call `for_tenant` on it;
- the modules (and models) in ALLOWED below, each with its reason.

The tenant-owned models are found by introspection: every model with a `tenant` foreign key.
The route-walking tests in tests/security/ check the same from the outside.
"""

import ast
from pathlib import Path

import pytest
from django.apps import apps

from integrations.models import Tenant

ROOT = Path(__file__).resolve().parent.parent
APP_DIRS = ["config", "integrations", "records", "references", "common", "demo"]
ANY_MODEL = "*"
# module (or folder, ending in /) -> the tenant-owned models it may query unscoped.
ALLOWED = {
    # The reseller-scoped admin: its querysets are scoped by reseller, not by one tenant.
    "integrations/admin.py": ANY_MODEL,
    "records/admin.py": ANY_MODEL,
    # The counts: given an integration or rows already resolved through for_tenant, they
    # read and write by those ids and keep the counts of every tenant.
    "records/counts.py": ANY_MODEL,
    # Management commands work across tenants (seed_demo, recount, api_key, import).
    "integrations/management/commands/": ANY_MODEL,
    "records/management/commands/": ANY_MODEL,
    "references/management/commands/": ANY_MODEL,
    "demo/management/commands/": ANY_MODEL,
    # Resolving the tenant: a user's memberships (tenancy.py; the tenant picker in views.py)
    # and an API key's connection, whose globally unique id decides the tenant.
    "integrations/tenancy.py": {"Membership"},
    "integrations/views.py": {"Membership"},
    "integrations/apikeys.py": {"Connection"},
    # The job worker runs a job by its id, whatever its tenant; the job row carries it.
    "records/jobs.py": {"Job"},
}
INSERTS = {"create", "bulk_create"}
INSERTS_NAMING_THE_TENANT = {"get_or_create", "update_or_create"}
READS_NOTHING = {"none"}
TENANT_MIXIN_SCOPING = {"scoped", "get_object_or_404"}


def tenant_owned_models() -> set[str]:
    return {
        model.__name__
        for model in apps.get_models()
        if any(
            field.name == "tenant" and field.many_to_one and field.related_model is Tenant
            for field in model._meta.get_fields()
        )
    }


def objects_in_chain(node):
    """The `X.objects` nodes of a call chain such as X.objects.select_related(...).filter(...)."""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute) and node.attr == "objects":
            yield node
        node = node.func if isinstance(node, ast.Call) else node.value


def unscoped_queries(source: str, models: set[str], allowed=frozenset()) -> list[str]:
    """Each `<Model>.objects` of a tenant-owned model (not in `allowed`) that is not scoped."""
    tree = ast.parse(source)
    parent_of = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    handed_to_tenant_mixin = {
        id(objects)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TENANT_MIXIN_SCOPING
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
        and node.args
        for objects in objects_in_chain(node.args[0])
    }
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Attribute)
            and node.attr == "objects"
            and isinstance(node.value, ast.Name)
            and node.value.id in models
            and node.value.id not in allowed
        ):
            continue
        if id(node) in handed_to_tenant_mixin:
            continue
        parent = parent_of.get(node)
        first = parent.attr if isinstance(parent, ast.Attribute) else None
        call = parent_of.get(parent) if first else None
        names_tenant = isinstance(call, ast.Call) and any(
            keyword.arg == "tenant" for keyword in call.keywords
        )
        if (
            first == "for_tenant"
            or first in INSERTS
            or first in READS_NOTHING
            or (first in INSERTS_NAMING_THE_TENANT and names_tenant)
        ):
            continue
        found.append(f"line {node.lineno}: {node.value.id}.objects.{first or ''}")
    return found


def allowed_in(module: str):
    allowed = set()
    for prefix, models in ALLOWED.items():
        if module == prefix or (prefix.endswith("/") and module.startswith(prefix)):
            if models == ANY_MODEL:
                return None
            allowed |= models
    return allowed


def app_modules():
    for folder in APP_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in relative:
                yield relative, path.read_text(encoding="utf-8")


def test_every_tenant_owned_model_can_be_scoped():
    models = {model.__name__: model for model in apps.get_models()}
    owned = tenant_owned_models()

    assert {"Connection", "Integration", "Record", "RemoteId", "Membership"} <= owned
    assert [name for name in sorted(owned) if not hasattr(models[name].objects, "for_tenant")] == []


def test_every_query_of_a_tenant_owned_model_starts_from_for_tenant():
    models = tenant_owned_models()
    offenders = {}
    for module, source in app_modules():
        allowed = allowed_in(module)
        if allowed is not None and (found := unscoped_queries(source, models, allowed)):
            offenders[module] = found

    assert offenders == {}, (
        "Start from Model.objects.for_tenant(tenant) (or TenantMixin.scoped); "
        "see the allowlist in tests/test_tenancy.py"
    )


def test_the_allowlist_names_existing_modules():
    for prefix in ALLOWED:
        assert (ROOT / prefix).exists(), prefix


MODELS = {"RemoteId", "Record", "Integration"}


@pytest.mark.parametrize(
    "source",
    [
        "RemoteId.objects.filter(remote_id=x)",
        "Record.objects.select_related('tenant').get(pk=1)",
        "Record.objects.all().for_tenant(t)",  # scoped too late: the chain must start with it
        "rows = Integration.objects",
        "Integration.objects.get_or_create(name='x')",
        "get_object_or_404(Record.objects.all(), pk=1)",  # Django's shortcut does not scope
        "Prefetch('remote_ids', queryset=RemoteId.objects.select_related('connection'))",
    ],
)
def test_the_scan_reports_an_unscoped_query(source):
    assert len(unscoped_queries(source, MODELS)) == 1


def test_the_scan_reports_every_unscoped_query_of_a_module():
    source = (
        "def leak(request):\n"
        "    rows = RemoteId.objects.filter(remote_id=request.GET['q'])\n"
        "    return Record.objects.filter(pk__in=rows.values('record_id'))\n"
    )

    assert unscoped_queries(source, MODELS) == [
        "line 2: RemoteId.objects.filter",
        "line 3: Record.objects.filter",
    ]
    assert unscoped_queries(source, MODELS, allowed={"RemoteId", "Record"}) == []


@pytest.mark.parametrize(
    "source",
    [
        "RemoteId.objects.for_tenant(tenant).filter(remote_id=x)",
        "Record.objects.create(tenant=tenant, record_type='order')",
        "Record.objects.bulk_create(records)",
        "Integration.objects.update_or_create(tenant=tenant, name='x')",
        "Integration.objects.none()",
        "self.get_object_or_404(Record.objects.select_related('source_connection'), pk=1)",
        "self.scoped(Record.objects.defer('data'))",
        "Tenant.objects.filter(slug=x)",  # not tenant-owned
    ],
)
def test_the_scan_accepts_scoped_queries(source):
    assert unscoped_queries(source, MODELS) == []

"""Reseller staff see and change only their own reseller's tenants in the Django admin."""

import pytest
from django.utils.html import escape

from integrations.models import Tenant
from records.models import AuditEntry
from tests.factories import (
    ConnectionFactory,
    IntegrationFactory,
    MembershipFactory,
    RecordFactory,
    ResellerFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def resellers():
    ours, theirs = ResellerFactory(name="Ours"), ResellerFactory(name="Theirs")
    staff = UserFactory(username="rita", is_staff=True)
    ours.staff.add(staff)
    return {
        "staff": staff,
        "our_tenant": TenantFactory(reseller=ours, name="Our Tenant"),
        "their_tenant": TenantFactory(reseller=theirs, name="Their Tenant"),
    }


@pytest.fixture
def staff_client(client, resellers):
    client.force_login(resellers["staff"])
    return client


def test_changelist_shows_only_own_tenants(staff_client, resellers):
    response = staff_client.get("/admin/integrations/tenant/")
    assert response.status_code == 200
    assert "Our Tenant" in response.text
    assert "Their Tenant" not in response.text


@pytest.mark.parametrize("model", ["connection", "integration", "membership"])
def test_changelists_of_tenant_objects_are_scoped(staff_client, resellers, model):
    ours = IntegrationFactory(tenant=resellers["our_tenant"], name="Our Sync")
    theirs = IntegrationFactory(tenant=resellers["their_tenant"], name="Their Sync")
    MembershipFactory(tenant=resellers["our_tenant"], user__username="our-member")
    MembershipFactory(tenant=resellers["their_tenant"], user__username="their-member")
    response = staff_client.get(f"/admin/integrations/{model}/")
    assert response.status_code == 200
    mine = {"connection": ours.source.name, "integration": "Our Sync", "membership": "our-member"}
    other = {
        "connection": theirs.source.name,
        "integration": "Their Sync",
        "membership": "their-member",
    }
    assert mine[model] in response.text
    assert other[model] not in response.text


def test_another_resellers_tenant_cannot_be_opened_or_changed(staff_client, resellers):
    theirs = resellers["their_tenant"]
    url = f"/admin/integrations/tenant/{theirs.pk}/change/"
    assert staff_client.get(url).status_code in (302, 403, 404)
    staff_client.post(
        url, {"name": "Hijacked", "slug": theirs.slug, "reseller": theirs.reseller_id}
    )
    theirs.refresh_from_db()
    assert theirs.name == "Their Tenant"
    delete = f"/admin/integrations/tenant/{theirs.pk}/delete/"
    staff_client.post(delete, {"post": "yes"})
    assert Tenant.objects.filter(pk=theirs.pk).exists()


def test_own_tenant_can_be_edited(staff_client, resellers):
    ours = resellers["our_tenant"]
    response = staff_client.post(
        f"/admin/integrations/tenant/{ours.pk}/change/",
        {"name": "Renamed", "slug": ours.slug, "reseller": ours.reseller_id},
    )
    assert response.status_code == 302
    ours.refresh_from_db()
    assert ours.name == "Renamed"


def test_connection_form_offers_only_own_tenants(staff_client, resellers):
    response = staff_client.get("/admin/integrations/connection/add/")
    assert response.status_code == 200
    # tenant is an autocomplete: its source is scoped as well
    auto = staff_client.get(
        "/admin/autocomplete/",
        {"app_label": "integrations", "model_name": "connection", "field_name": "tenant"},
    )
    names = [item["text"] for item in auto.json()["results"]]
    assert names == ["Our Tenant"]


def test_cannot_add_a_connection_to_another_resellers_tenant(staff_client, resellers):
    connector = ConnectionFactory(tenant=resellers["our_tenant"]).connector
    response = staff_client.post(
        "/admin/integrations/connection/add/",
        {
            "tenant": resellers["their_tenant"].pk,
            "connector": connector.pk,
            "name": "Sneaky",
            "active": "on",
        },
    )
    assert response.status_code == 200  # form redisplayed with an error
    assert not resellers["their_tenant"].connections.exists()


def test_a_tenant_user_without_staff_flag_cannot_use_the_admin(client, world):
    client.force_login(world.admin)
    response = client.get("/admin/integrations/tenant/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_superuser_sees_all(client, resellers):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get("/admin/integrations/tenant/")
    assert "Our Tenant" in response.text and "Their Tenant" in response.text


def test_changelists_show_short_values_with_the_whole_value_on_hover(client, world):
    """Narrow columns (integrations/admin_columns.py): a connection's name for an actor
    `connection/<hex id>`, 32-hex ids cut to 8 characters, long summaries cut at 60."""
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    record = RecordFactory(tenant=world.tenant)
    summary = f"Created order {record.local_id} from the nightly export of every web shop order"
    AuditEntry.objects.create(
        tenant=world.tenant,
        actor=f"connection/{world.shop.connection_id}",
        action=AuditEntry.Action.RECORD_CREATE,
        record=record,
        local_id=record.local_id,
        summary=summary,
    )

    html = client.get("/admin/records/auditentry/").text
    assert f'<span title="connection/{world.shop.connection_id}">Shopify</span>' in html
    assert f'<abbr title="{record.local_id}">{record.local_id[:8]}…</abbr>' in html
    assert f'title="{escape(summary)}">Created order {record.local_id[:8]}… from the' in html
    assert f">{record.local_id}<" not in html

    html = client.get("/admin/integrations/connection/").text
    shop_id = world.shop.connection_id
    assert f'<abbr title="{shop_id}">{shop_id[:8]}…</abbr>' in html
    assert "article, customer, order, stock" in client.get("/admin/integrations/integration/").text

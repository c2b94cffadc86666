"""Reseller staff rotate an API connection's key in the Django admin; it is shown once."""

import re

import pytest
from django.core.management import call_command

from integrations.models import Connection
from tests.factories import ConnectionFactory, ResellerFactory, UserFactory

from .conftest import ApiClient, api_connector

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, world):
    staff = UserFactory(username="rita", is_staff=True)
    world.tenant.reseller.staff.add(staff)
    client.force_login(staff)
    return client


def rotate(client, *connections):
    return client.post(
        "/admin/integrations/connection/",
        {"action": "rotate_api_key", "_selected_action": [c.pk for c in connections]},
    )


def test_staff_rotate_a_key_and_see_it_once_on_the_page(staff_client, warehouse):
    response = rotate(staff_client, warehouse)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "shown only this once" in response.text
    warehouse.refresh_from_db()
    key = re.search(r'<code class="api-key">([^<]+)</code>', response.text).group(1)
    assert ApiClient(warehouse, key).get("order").status_code == 200
    # The old key stopped working, and the new one is in no cookie.
    assert ApiClient(warehouse, warehouse.key).get("order").status_code == 401
    assert all(key not in morsel.value for morsel in response.cookies.values())


def test_other_connectors_are_skipped_with_a_warning(staff_client, warehouse, world):
    response = rotate(staff_client, world.shop)
    assert response.status_code == 302
    world.shop.refresh_from_db()
    assert world.shop.api_key_digest == ""


def test_staff_cannot_rotate_another_resellers_connection(staff_client, world):
    theirs = ConnectionFactory(
        tenant__reseller=ResellerFactory(), connector=api_connector(), name="Theirs"
    )
    rotate(staff_client, theirs)
    assert Connection.objects.get(pk=theirs.pk).api_key_digest == ""


def test_the_change_page_says_when_the_key_was_set_but_never_shows_it(staff_client, warehouse):
    response = staff_client.get(f"/admin/integrations/connection/{warehouse.pk}/change/")
    assert response.status_code == 200
    assert "stored hashed, shown only once" in response.text
    assert warehouse.key not in response.text
    assert warehouse.api_key_digest not in response.text


def test_seed_demo_prints_a_working_demo_key(settings, capsys):
    settings.DEBUG = True
    call_command("seed_demo")
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "API key" in line and "curl" not in line)
    key = line.split()[-1]
    connection = Connection.objects.get(name="Warehouse API")
    assert ApiClient(connection, key).get("order", {"limit": 1}).status_code == 200

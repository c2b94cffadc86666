"""403, 404 and 500 pages in the site's layout: what happened, and where to go."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_support_user_refused_an_admin_action_sees_why_and_where_to_go(support_client, world):
    url = f"/t/acme/integrations/{world.integration.pk}/references/orders/delete-all/"
    response = support_client.get(url)

    assert response.status_code == 403
    page = response.content.decode()
    assert "You can't do this here" in page
    assert "Only tenant admins may do this." in page
    assert "You are support on Acme AB" in page
    assert 'href="/t/acme/"' in page and "Log out" in page  # the layout, with a way back


def test_an_unknown_page_is_a_404_in_the_layout(support_client, world):
    response = support_client.get("/t/acme/integrations/999999/references/orders/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "This page does not exist" in page
    assert "Go to the start page" in page and "Log out" in page


def test_an_unexpected_error_is_a_500_page_in_the_layout(settings, world):
    settings.ROOT_URLCONF = "tests.error_urls"
    client = Client(raise_request_exception=False)

    response = client.get("/boom/")

    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page
    assert "saved whole or not at all" in page


def test_a_reseller_without_a_tenant_is_pointed_to_the_admin_site(client, world):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="rita", is_staff=True))
    page = client.get("/").content.decode()
    assert "Open the admin site" in page and 'href="/admin/"' in page


def test_every_page_names_its_icon_and_the_old_address_leads_to_it(client, db):
    page = client.get("/login/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in page
    assert client.get("/favicon.ico")["Location"] == "/static/favicon.svg"


def test_pages_are_sent_compressed(support_client, world):
    url = f"/t/acme/integrations/{world.integration.pk}/references/orders/"
    response = support_client.get(url, headers={"Accept-Encoding": "gzip"})
    assert response["Content-Encoding"] == "gzip"

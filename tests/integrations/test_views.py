import pytest

from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db


def test_login_page_logs_in_and_lands_on_the_only_tenant(client, world):
    page = client.get("/login/")
    assert page.status_code == 200
    assert 'name="username"' in page.text

    response = client.post(
        "/login/", {"username": "anna", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    response = client.get(response["Location"], follow=True)
    assert response.request["PATH_INFO"] == "/t/acme/"
    assert "Shopify -&gt; Fortnox" in response.text


def test_wrong_password_shows_an_error(client, world):
    response = client.post("/login/", {"username": "anna", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.text


def test_pages_need_login(client, world):
    response = client.get("/t/acme/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/t/acme/")


def test_logout_is_a_post(admin_client):
    response = admin_client.post("/logout/")
    assert response.status_code == 302
    assert admin_client.get("/t/acme/").status_code == 302


def test_user_with_several_tenants_picks_one(client, world):
    MembershipFactory(user=world.admin, tenant=TenantFactory(name="Beta AB", slug="beta"))
    client.force_login(world.admin)
    response = client.get("/")
    assert response.status_code == 200
    assert "Acme AB" in response.text and "Beta AB" in response.text
    assert 'href="/t/beta/"' in response.text


def test_user_without_tenant_is_told_what_to_do(client, db):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="lonely"))
    response = client.get("/")
    assert response.status_code == 200
    assert "no tenant" in response.text.lower()


def test_another_tenants_home_is_404(admin_client, world):
    assert admin_client.get("/t/other/").status_code == 404
    assert admin_client.get("/t/does-not-exist/").status_code == 404


def test_record_page_shows_remote_ids_and_is_404_for_another_tenant(admin_client, world):
    from tests.factories import make_reference

    mine = make_reference(world.integration, source_id="5001", target_id="INV-1")
    theirs = make_reference(world.other_integration, source_id="5001", target_id="INV-1")
    response = admin_client.get(f"/t/acme/records/{mine.local_id}/")
    assert response.status_code == 200
    assert "INV-1" in response.text
    assert admin_client.get(f"/t/acme/records/{theirs.local_id}/").status_code == 404
    assert admin_client.get(f"/t/other/records/{theirs.local_id}/").status_code == 404

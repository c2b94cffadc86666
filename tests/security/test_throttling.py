"""Repeated failed log-ins are locked out for a while; a correct password does not get through."""

import os
import subprocess
import sys
from base64 import b64encode
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import RequestFactory
from django.utils import timezone

from integrations import throttling
from integrations.models import AuthFailure
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

WRONG = "not the password"


def fail_login(client, username, times, **extra):
    for _ in range(times):
        response = client.post("/login/", {"username": username, "password": WRONG}, **extra)
        assert response.status_code == 200
        assert "correct username and password" in response.text


def test_five_wrong_passwords_lock_the_account_even_for_the_right_password(client, world):
    fail_login(client, "anna", 5)

    response = client.post("/login/", {"username": "anna", "password": PASSWORD})

    assert response.status_code == 429
    assert "Too many failed attempts" in response.text
    assert "try again in 15 minutes" in response.text
    assert int(response["Retry-After"]) > 14 * 60
    assert "_auth_user_id" not in client.session
    assert client.get("/t/acme/").status_code == 302  # still logged out


def test_the_lockout_ends_when_the_failures_leave_the_window(client, world):
    fail_login(client, "anna", 5)
    AuthFailure.objects.update(created_at=timezone.now() - timedelta(minutes=16))

    response = client.post("/login/", {"username": "anna", "password": PASSWORD})

    assert response.status_code == 302
    assert client.get("/t/acme/").status_code == 200


def test_a_successful_log_in_clears_earlier_failures(client, world):
    fail_login(client, "anna", 4)
    assert client.post("/login/", {"username": "anna", "password": PASSWORD}).status_code == 302
    client.post("/logout/")

    fail_login(client, "anna", 4)
    assert client.post("/login/", {"username": "anna", "password": PASSWORD}).status_code == 302


def test_the_username_is_matched_whatever_its_case(client, world):
    fail_login(client, "Anna", 3)
    fail_login(client, "ANNA ", 2)
    response = client.post("/login/", {"username": "anna", "password": PASSWORD})
    assert response.status_code == 429


def test_other_people_at_another_address_can_still_log_in(client, world):
    fail_login(client, "anna", 5, REMOTE_ADDR="203.0.113.9")

    response = client.post(
        "/login/", {"username": "sven", "password": PASSWORD}, REMOTE_ADDR="198.51.100.7"
    )

    assert response.status_code == 302


def test_one_address_guessing_many_accounts_is_locked_out(client, world):
    for n in range(30):
        UserFactory(username=f"victim{n}")
        client.post("/login/", {"username": f"victim{n}", "password": WRONG})

    response = client.post("/login/", {"username": "sven", "password": PASSWORD})

    assert response.status_code == 429


def test_one_account_guessed_from_many_addresses_is_locked_out(client, world):
    for n in range(20):
        client.post(
            "/login/", {"username": "anna", "password": WRONG}, REMOTE_ADDR=f"198.51.100.{n}"
        )

    response = client.post(
        "/login/", {"username": "anna", "password": PASSWORD}, REMOTE_ADDR="192.0.2.1"
    )

    assert response.status_code == 429


def test_the_admin_log_in_is_throttled_too(client, world):
    world.admin.is_staff = True
    world.admin.save()
    for _ in range(5):
        client.post("/admin/login/", {"username": "anna", "password": WRONG})

    response = client.post("/admin/login/?next=/admin/", {"username": "anna", "password": PASSWORD})

    assert "Too many failed attempts" in response.text
    assert "_auth_user_id" not in client.session


def test_no_secret_is_stored_with_a_failure(client, world):
    fail_login(client, "anna", 1)
    failure = AuthFailure.objects.get()
    assert failure.scope == "login"
    assert "anna" not in failure.key and WRONG not in str(failure.__dict__)
    assert failure.ip == "127.0.0.1"


def test_the_api_scope_has_its_own_counts(db):
    request = RequestFactory().get("/api/v1/records/", REMOTE_ADDR="192.0.2.50")
    for _ in range(10):
        assert throttling.check("api", "0123abcd", request) is None
        throttling.record_failure("api", "0123abcd", request)

    lockout = throttling.check("api", "0123abcd", request)

    assert lockout is not None and 0 < lockout.retry_after <= 900
    assert throttling.check("login", "0123abcd", request) is None
    assert throttling.check("api", "another-connection", request) is None


PROXY = "10.0.0.5"


def test_a_spoofed_x_forwarded_for_from_an_untrusted_address_does_not_change_the_client(
    client, world, settings
):
    settings.REFDESK_TRUSTED_PROXIES = [PROXY]
    for n in range(5):  # each guess claims another address; all come from 203.0.113.9
        fail_login(
            client, "anna", 1, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"
        )

    response = client.post(
        "/login/",
        {"username": "anna", "password": PASSWORD},
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="192.0.2.77",
    )

    assert response.status_code == 429
    assert set(AuthFailure.objects.values_list("ip", flat=True)) == {"203.0.113.9"}


def test_behind_a_trusted_proxy_the_client_is_the_address_the_proxy_appended(
    client, world, settings
):
    settings.REFDESK_TRUSTED_PROXIES = [PROXY]
    for n in range(5):  # the client's own (spoofed) entries come first; the proxy appends
        fail_login(
            client,
            "anna",
            1,
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.9",
        )
    assert set(AuthFailure.objects.values_list("ip", flat=True)) == {"203.0.113.9"}

    locked = client.post(
        "/login/",
        {"username": "anna", "password": PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.9",
    )
    elsewhere = client.post(
        "/login/",
        {"username": "anna", "password": PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.7",
    )

    assert locked.status_code == 429  # the same client, whatever it wrote before
    assert elsewhere.status_code == 302  # another client behind the same proxy


def test_through_a_chain_of_trusted_proxies_the_first_untrusted_entry_from_the_right_counts(
    client, world, settings
):
    settings.REFDESK_TRUSTED_PROXIES = [PROXY, "10.1.0.0/16"]
    fail_login(
        client,
        "anna",
        1,
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.9, 10.1.4.2",
    )
    assert list(AuthFailure.objects.values_list("ip", flat=True)) == ["203.0.113.9"]


def test_the_api_throttle_reads_the_client_behind_a_trusted_proxy_too(db, client, settings):
    settings.REFDESK_TRUSTED_PROXIES = [PROXY]
    client.get(
        "/api/v1/order",
        HTTP_AUTHORIZATION="Basic " + b64encode(b"0123abcd:wrong-key").decode(),
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9",
    )
    assert list(AuthFailure.objects.values_list("scope", "ip")) == [("api", "203.0.113.9")]


def test_the_old_trust_everyone_switch_stops_the_start_and_says_what_to_set():
    env = {
        **os.environ,
        "SECRET_KEY": "x",
        "AUTH_THROTTLE_TRUST_X_FORWARDED_FOR": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("REFDESK_TRUSTED_PROXIES", None)
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "replaced by REFDESK_TRUSTED_PROXIES" in done.stderr

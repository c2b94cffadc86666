"""Security headers on every response, production settings, and the 503 for database outages."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from config.security import DatabaseUnavailableMiddleware, server_error

pytestmark = pytest.mark.django_db

PROJECT = Path(__file__).resolve().parents[2]
EXPECTED_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'self'"],
}


def csp_directives(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: sources}.

    django-csp 4 writes the directives in no fixed order, so compare them one by one.
    """
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} twice"
        directives[name] = sources
    return directives


@pytest.mark.parametrize("path", ["/login/", "/t/acme/", "/t/nope/", "/", "/admin/login/"])
def test_every_page_forbids_inline_scripts_and_framing(admin_client, path):
    response = admin_client.get(path)

    assert csp_directives(response) == EXPECTED_CSP
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


def test_only_the_api_docs_allow_inline_styles(client):
    """Swagger UI sets inline styles: django-ninja's docs_decorator (django-csp's csp_update in
    records/api.py) loosens style-src on the docs views (the page and its schema); the API
    itself and every other page keep the site policy."""
    relaxed = {**EXPECTED_CSP, "style-src": ["'self'", "'unsafe-inline'"]}
    for path in ["/api/v1/docs", "/api/v1/openapi.json"]:
        response = client.get(path)
        assert response.status_code == 200
        assert csp_directives(response) == relaxed, path
        assert "camera=()" in response["Permissions-Policy"]

    for path in ["/api/v1/order", "/login/"]:
        assert csp_directives(client.get(path)) == EXPECTED_CSP, path


def test_a_view_that_sets_its_own_policy_keeps_it(rf):
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse

    from config.security import PermissionsPolicyMiddleware

    def view(request):
        response = HttpResponse()
        response["Content-Security-Policy"] = "default-src 'none'"
        response["Permissions-Policy"] = "camera=(self)"
        return response

    request = rf.get("/anything/")
    response = CSPMiddleware(PermissionsPolicyMiddleware(view))(request)
    assert response["Content-Security-Policy"] == "default-src 'none'"
    assert response["Permissions-Policy"] == "camera=(self)"


def test_pages_carry_no_inline_script_or_style(admin_client):
    for path in ["/login/", "/t/acme/", "/"]:
        html = admin_client.get(path, follow=True).text
        assert "<script>" not in html and "<script >" not in html
        assert " style=" not in html and "<style" not in html
        assert " onclick=" not in html and "hx-on" not in html


def test_base_layout_turns_off_htmx_injected_indicator_style(admin_client):
    html = admin_client.get("/t/acme/").text
    assert '"includeIndicatorStyles": false' in html
    css = (PROJECT / "static/css/refdesk.css").read_text()
    assert ".htmx-indicator {" in css
    assert ".htmx-request .htmx-indicator" in css


def _production_env(**extra) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DEBUG",
            "SECURE_COOKIES",
            "SECURE_SSL_REDIRECT",
            "SECURE_HSTS_SECONDS",
            # set by tests/conftest.py for Playwright; never in production (async.E001)
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    env.update(
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="refdesk.example.com",
        PYTHONPATH=str(PROJECT),
        **extra,
    )
    return env


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_send_secure_cookies_and_hsts():
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_HTTPONLY, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT, s.X_FRAME_OPTIONS]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env=_production_env(DJANGO_SETTINGS_MODULE="config.settings"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        False,
        True,
        True,
        True,
        True,
        31536000,
        True,
        True,
        "DENY",
    ]


def test_production_refuses_to_start_without_a_secret_key():
    env = _production_env(DJANGO_SETTINGS_MODULE="config.settings")
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_hsts_is_sent_over_https(client):
    # The suite runs with DEBUG off, i.e. with the production security settings.
    response = client.get("/login/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response.cookies["csrftoken"]["secure"]
    assert response.cookies["csrftoken"]["httponly"]


# --- the database is down ---------------------------------------------------------------


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_database_outage_in_a_view_is_a_503_page(admin_client, monkeypatch, error):
    def database_down(*args, **kwargs):
        raise error("connection refused")

    monkeypatch.setattr("integrations.tenancy.membership_for", database_down)

    response = admin_client.get("/t/acme/")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "briefly unavailable" in response.text
    assert "nothing was read or saved" in response.text
    assert csp_directives(response) == EXPECTED_CSP
    assert "camera=()" in response["Permissions-Policy"]


def test_a_database_outage_under_the_api_is_json():
    request = RequestFactory().post("/api/v1/records/", HTTP_ACCEPT="application/json")
    response = DatabaseUnavailableMiddleware(lambda r: None).process_exception(
        request, OperationalError("server closed the connection unexpectedly")
    )
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert body["code"] == "database_unavailable"
    assert set(body) == {"detail", "code", "errors", "heldBy"}  # the API's error shape


def test_other_errors_are_left_to_the_normal_500():
    request = RequestFactory().get("/t/acme/")
    assert (
        DatabaseUnavailableMiddleware(lambda r: None).process_exception(request, ValueError("bug"))
        is None
    )


def test_a_database_outage_outside_a_view_is_a_503_too():
    """E.g. the session middleware saving while the database is down reaches handler500."""
    request = RequestFactory().get("/t/acme/")
    try:
        raise OperationalError("the database system is shutting down")
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(RequestFactory().get("/api/v1/records/"))
    assert response.status_code == 500
    assert json.loads(response.content)["code"] == "server_error"

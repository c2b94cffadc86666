"""Response headers and database-outage handling that apply to every request.

Content-Security-Policy comes from django-csp (`csp.middleware.CSPMiddleware`), with the policy
in `settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]`. A view that truly needs a looser policy
(e.g. the API docs page, whose Swagger UI sets inline styles) says so itself with django-csp's
decorators (`@csp.decorators.csp_update({"style-src": [UNSAFE_INLINE]})`): the exception then
covers that one view, not a path prefix. (With DEBUG on, django-csp leaves 404 and 500
responses without the header, so Django's debug pages keep their inline styles.)

Permissions-Policy: Django has no setting for it, so `PermissionsPolicyMiddleware` sends
`settings.PERMISSIONS_POLICY` on every response that has none.

Database outages: an OperationalError / InterfaceError (PostgreSQL restarting, a dropped
connection) becomes a 503 with a clear page, or JSON under /api/, instead of a 500. Django
then discards the broken connection at the end of the request (CONN_HEALTH_CHECKS), so the
app recovers by itself once the database is back.
"""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views import defaults

from common.errors import error_body

logger = logging.getLogger("refdesk.security")


class PermissionsPolicyMiddleware:
    """Adds `settings.PERMISSIONS_POLICY` as the Permissions-Policy header unless a view set one."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.permissions_policy = getattr(settings, "PERMISSIONS_POLICY", "")

    def __call__(self, request):
        response = self.get_response(request)
        if self.permissions_policy and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = self.permissions_policy
        return response


# --- database outages -------------------------------------------------------------------

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = "5"

UNAVAILABLE_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>refdesk is briefly unavailable</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{css}">
</head>
<body>
  <main id="main" class="page auth-page">
    <div class="card auth-card">
      <h1>refdesk is briefly unavailable</h1>
      <p class="lead">The database could not be reached, so nothing was read or saved.</p>
      <p>Wait a few seconds and try again. If you were saving a change, check afterwards
      whether it is there before repeating it.</p>
    </div>
  </main>
</body>
</html>
"""


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


def _json_error(detail: str, code: str, status: int) -> JsonResponse:
    # The API's one error shape, so clients parse a 503 like a 422.
    return JsonResponse(error_body(detail, code), status=status)


def database_unavailable_response(request) -> HttpResponse:
    """A 503 that touches neither the database nor the template engine's context processors."""
    if _wants_json(request):
        response = _json_error(
            "The database is briefly unavailable; nothing was changed. Retry in a few seconds.",
            "database_unavailable",
            503,
        )
    else:
        from django.templatetags.static import static

        try:
            css = static("css/refdesk.css")
        except ValueError:  # manifest missing (collectstatic not run): still answer
            css = f"{settings.STATIC_URL}css/refdesk.css"
        response = HttpResponse(UNAVAILABLE_HTML.format(css=css), status=503)
    response["Retry-After"] = RETRY_AFTER_SECONDS
    response["Cache-Control"] = "no-store"
    return response


class ApiErrorsAsJsonMiddleware:
    """Every error under /api/ in the API's one JSON shape: the ninja views answer their own
    errors so, but a route that does not exist (Django's 404 page), a method a route does not
    take (ninja's plain-text 405) or a body Django refused before any view ran would not."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return _as_json_error(response)
        return response


def _as_json_error(response) -> JsonResponse:
    status = response.status_code
    reason = response.reason_phrase or "Error"
    converted = _json_error(f"{reason}.", reason.lower().replace(" ", "_"), status)
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            converted[header] = response[header]
    return converted


class DatabaseUnavailableMiddleware:
    """Turns a database connection failure raised by a view into a 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            logger.warning(
                "Database unavailable on %s %s: %s", request.method, request.path, exception
            )
            return database_unavailable_response(request)
        return None


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    """handler500: a failure outside views (a middleware saving the session while the database
    is down) reaches here with the exception still being handled, so it can become a 503 too."""
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_ERRORS):
        return database_unavailable_response(request)
    if _wants_json(request):
        return _json_error("Something went wrong on our side.", "server_error", 500)
    return defaults.server_error(request, template_name)

"""Compress HTML pages only.

API responses are small JSON that clients (and the schema tests' WSGI transport) read as sent;
static files come compressed from WhiteNoise already.
"""

from django.middleware.gzip import GZipMiddleware


class HtmlGZipMiddleware(GZipMiddleware):
    def process_response(self, request, response):
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        return super().process_response(request, response)

"""Every page URL answers both the full page and the fragment htmx asks for (by HX-Request and
HX-Target), so every response says it varies on them: a cache, or htmx's own history restore,
then never shows a bare fragment where a page was expected (or the other way round)."""

from django.utils.cache import patch_vary_headers


class VaryOnHtmxMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method in ("GET", "HEAD"):
            patch_vary_headers(response, ("HX-Request", "HX-Target"))
        return response

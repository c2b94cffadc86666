"""A URL that fails, for the 500 page test (tests/test_error_pages.py)."""

from django.urls import path

from config.urls import handler500, urlpatterns  # noqa: F401 (the project's handler500)


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [*urlpatterns, path("boom/", boom)]

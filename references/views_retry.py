"""Retry sync for the rows a References filter shows (the table has no row selection: the
filter is the selection). The records are re-derived from the filter's parameters on the
server, by the page's own FilterSet, never from ids the browser sent; the preview and the
apply are records.views_retry's."""

from __future__ import annotations

from urllib.parse import urlencode

from django.views.generic import View

from records.views_retry import RetrySyncMixin

from .filters import ReferenceFilterSet
from .mixins import IntegrationMixin

# The filter's parameters the confirmation posts again (references.filters.DEFAULTS names).
PARAMS = ("q", "linked", "modified_after")


class FilteredRetrySyncView(RetrySyncMixin, IntegrationMixin, View):
    why = "from the References page"

    def params(self):
        source = self.request.POST if self.request.method == "POST" else self.request.GET
        return {name: source.get(name) for name in PARAMS if source.get(name)}

    def record_ids(self) -> set[int]:
        filterset = ReferenceFilterSet(
            self.params(), integration=self.integration, record_type=self.record_type
        )
        return set(filterset.qs.values_list("record_id", flat=True))

    def back_url(self) -> str:
        query = urlencode(self.params())
        return self.url("list") + (f"?{query}" if query else "")

    def hidden_fields(self) -> list[tuple[str, str]]:
        return list(self.params().items())

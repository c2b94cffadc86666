"""The References table's query-string filters (q, linked, modified_after, sort).

The FilterSet parses and validates the query string; the filtering itself is
`selectors.reference_rows`, so the page and the CSV export share one query:

    filterset = ReferenceFilterSet(request.GET, integration=integration, record_type="order")
    rows = filterset.qs  # the same as reference_rows(integration, "order", **filterset.params)

Invalid values (an unknown `linked`, a malformed date) are ignored, not errors: a bookmarked
URL always shows something.
"""

from __future__ import annotations

import django_filters
from django import forms

from records.models import RemoteId

from .selectors import DEFAULT_SORT, LINKED_CHOICES, SORT_CHOICES, reference_rows

DEFAULTS = {"q": "", "linked": "all", "modified_after": None, "sort": DEFAULT_SORT}


class ReferenceFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="_noop",
        widget=forms.TextInput(attrs={"placeholder": "Search source or target id or ref…"}),
    )
    linked = django_filters.ChoiceFilter(choices=LINKED_CHOICES, empty_label=None, method="_noop")
    modified_after = django_filters.DateTimeFilter(label="Modified on or after", method="_noop")
    sort = django_filters.ChoiceFilter(choices=SORT_CHOICES, empty_label=None, method="_noop")

    class Meta:
        model = RemoteId
        fields: list[str] = []

    def __init__(self, data=None, *, integration, record_type: str, **kwargs):
        self.integration = integration
        self.record_type = record_type
        super().__init__(data, queryset=RemoteId.objects.none(), **kwargs)

    def _noop(self, queryset, name, value):
        return queryset

    @property
    def params(self) -> dict:
        """The valid filter values, defaults filled in: keyword arguments of reference_rows."""
        cleaned = {}
        if self.is_bound:
            self.form.is_valid()  # cleaned_data then holds the valid fields only
            cleaned = self.form.cleaned_data
        values = dict(DEFAULTS)
        for name in DEFAULTS:
            value = cleaned.get(name)
            if value not in (None, ""):
                values[name] = value.strip() if isinstance(value, str) else value
        return values

    def filter_queryset(self, queryset):
        return reference_rows(self.integration, self.record_type, **self.params)

    @property
    def qs(self):
        if not hasattr(self, "_qs"):
            self._qs = reference_rows(self.integration, self.record_type, **self.params)
        return self._qs

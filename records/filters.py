"""Filters of the Records list: which connection knows a record, when and by whom it changed."""

import re

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q

from integrations.models import Connection, Integration

from .models import Record, RemoteId

LOCAL_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")


class ConnectionChoiceFilter(django_filters.ModelChoiceFilter):
    """Choose a connection of the tenant; filters on whether it holds a remote id."""

    def __init__(self, *args, known: bool, **kwargs):
        self.known = known
        super().__init__(*args, queryset=Connection.objects.none(), **kwargs)

    def filter(self, queryset, value):
        if value is None:
            return queryset
        knows = Exists(
            RemoteId.objects.for_tenant(self.parent.tenant).filter(
                record=OuterRef("pk"), connection=value
            )
        )
        return queryset.filter(knows if self.known else ~knows)


class RecordFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label="Search",
        widget=forms.TextInput(attrs={"type": "search"}),
    )
    known_to = ConnectionChoiceFilter(known=True, label="Known to", empty_label="Any connection")
    unknown_to = ConnectionChoiceFilter(known=False, label="Not known to", empty_label="-")
    modified_after = django_filters.DateTimeFilter(
        field_name="last_modified",
        lookup_expr="gte",
        label="Modified at or after",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
    )
    last_modified_by = django_filters.CharFilter(
        field_name="last_modified_by", label="Last modified by"
    )

    class Meta:
        model = Record
        fields = ["q", "known_to", "unknown_to", "modified_after", "last_modified_by"]

    def __init__(self, *args, tenant, **kwargs):
        self.tenant = tenant
        super().__init__(*args, **kwargs)
        # One read of the tenant's connections for both choice lists (and for the list's
        # lead ids, which prefer an integration's source: `is_source`).
        self.connections = list(
            Connection.objects.for_tenant(tenant)
            .select_related("connector")
            .annotate(
                is_source=Exists(
                    Integration.objects.for_tenant(tenant).filter(source=OuterRef("pk"))
                )
            )
            .order_by("name", "pk")
        )
        for name in ("known_to", "unknown_to"):
            field = self.form.fields[name]
            # The queryset checks a chosen value; the choices are the list read above.
            field.queryset = Connection.objects.for_tenant(tenant).select_related("connector")
            field.label_from_instance = lambda c: f"{c.name} ({c.connector.name})"
            field.widget.choices = [("", field.empty_label)] + [
                (connection.pk, field.label_from_instance(connection))
                for connection in self.connections
            ]
        self.form.fields["last_modified_by"].widget.attrs.update(
            {"placeholder": "user/anna", "class": "id", "autocomplete": "off"}
        )

    def search(self, queryset, name, value):
        """A local id (32 hex), or any connection's remote id or ref: exact, case-sensitive."""
        value = value.strip()
        if not value:
            return queryset
        matches = Q(
            Exists(
                RemoteId.objects.for_tenant(self.tenant)
                .filter(record=OuterRef("pk"))
                .filter(Q(remote_id=value) | Q(remote_ref=value))
            )
        )
        if LOCAL_ID_RE.match(value):
            matches |= Q(local_id=value.lower())
        return queryset.filter(matches)

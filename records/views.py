"""The Records pages: a list per record type and one page per record (remote ids across every
connection, custom data, data, history). Views declare; rules live in services.py."""

import json
from itertools import groupby

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views import View
from django.views.generic import TemplateView
from django_htmx.http import reswap, retarget

from common.entities import EntityType, slug_of
from common.lists import ListMixin
from integrations.tenancy import TenantMixin

from . import refusals
from .audit import Actor
from .custom_data import delete_custom_data
from .filters import RecordFilterSet
from .forms import CustomDataAddForm, CustomDataEditForm, owned_by_connector
from .models import CustomData, Record
from .queries import (
    RECORDS_KEYSET,
    STANDARD_TYPES,
    connections_of,
    custom_data_of,
    integrations_of,
    leading_remote_id,
    record_at,
    record_history,
    record_type_tabs,
    records_for_their_page,
    remote_id_rows,
    remote_ids_of,
    type_label,
)
from .validation import RECORD_TYPE_PATTERN

HISTORY_LIMIT = 100


def references_url(tenant_slug: str, integration, record_type: str, remote_id: str = "") -> str:
    """The References page of one integration, searching for `remote_id` if given."""
    slug = slug_of(record_type)
    if slug is None:
        return ""
    url = reverse(
        "references:list",
        kwargs={"tenant_slug": tenant_slug, "integration_id": integration.pk, "entity": slug},
    )
    return f"{url}?{urlencode({'q': remote_id})}" if remote_id else url


class RecordIndexView(TenantMixin, View):
    """/records/ opens the first tab."""

    def get(self, request, *args, **kwargs):
        first = STANDARD_TYPES[0]
        return HttpResponseRedirect(reverse("records:list", args=[self.tenant.slug, first]))


class RecordListView(TenantMixin, ListMixin, TemplateView):
    """Records of one type: tabs, filters, search and pages without counting the whole set."""

    filterset_class = RecordFilterSet
    template_name = "records/record_list.html"
    partial_template_name = "records/partials/record_table.html"
    keyset = RECORDS_KEYSET

    def resolve(self) -> None:
        super().resolve()
        if not RECORD_TYPE_PATTERN.match(self.kwargs["record_type"]):
            raise Http404("No such record type.")

    def get_filterset_kwargs(self) -> dict:
        queryset = (
            self.scoped(Record)
            .filter(record_type=self.kwargs["record_type"])
            # Each row's remote ids come in its own query, as JSON rows (records.queries).
            .annotate(remote_id_rows=remote_id_rows(self.tenant))
            .order_by("-last_modified", "-local_id")  # local_id: the unique tie-breaker
        )
        return {"queryset": queryset, "tenant": self.tenant}

    def get_template_names(self):
        return [self.list_template()]

    def locator(self):
        """Where a numbered page starts when no filter applies: the record index alone
        (queries.record_at). A filtered page comes from its ids (common.paging)."""
        filterset = self.filterset
        if filterset.is_bound:
            filterset.form.is_valid()  # cleaned_data: the valid values, which are applied
            if any(value not in (None, "") for value in filterset.form.cleaned_data.values()):
                return None
        records = self.scoped(Record).filter(record_type=self.kwargs["record_type"])
        return lambda offset: record_at(records, offset, descending=True)

    def get_context_data(self, **kwargs):
        record_type = self.kwargs["record_type"]
        filterset = self.filterset
        # The References page's paging: one row more than shown says whether a next page
        # exists, and Next/Previous seek from the last/first row shown (keyset paging).
        result, _, _ = self.paginate(filterset.qs, self.keyset, locate=self.locator())
        records = result.rows
        # The integrations' sources, from the connections the filter form lists anyway.
        sources = frozenset(c.pk for c in filterset.connections if c.is_source)
        for record in records:
            record.tenant = self.tenant  # the membership's, already loaded: no query
            record.remote_list = remote_ids_of(record)
            record.lead = leading_remote_id(record.remote_list, sources)
        filtered = any(
            filterset.form.data.get(name) for name in filterset.filters if filterset.form.data
        )
        return super().get_context_data(
            **self.paging_context(),
            type_label=type_label(record_type),
            tabs=record_type_tabs(self.tenant, record_type),
            filtered=filtered,
            records=records,
            page=result.number,
            has_next=result.has_next,
            has_previous=result.has_previous,
            first_position=result.first_position,
            last_position=result.last_position,
            first_index=result.start,
            last_index=result.end,
            **kwargs,
        )


# --- one record ------------------------------------------------------------------------


class RecordMixin(TenantMixin):
    """Resolves the record from the URL within the request's tenant (another tenant's: 404)."""

    def resolve(self) -> None:
        super().resolve()
        self.get_record()  # before the role check: another tenant's record is a 404 to all

    def resolve_objects(self) -> None:
        if "custom_data_id" in self.kwargs:
            self.get_item()

    def get_record(self) -> Record:
        if not hasattr(self, "_record"):
            self._record = self.get_object_or_404(
                records_for_their_page(self.tenant), local_id=self.kwargs["local_id"]
            )
            self._record.tenant = self.tenant  # the membership's, already loaded: no query
        return self._record

    def get_item(self) -> CustomData:
        return self.get_object_or_404(
            CustomData.objects.select_related("connection__connector", "record"),
            record=self.get_record(),
            pk=self.url_id("custom_data_id"),
        )

    @property
    def actor(self) -> Actor:
        return Actor.for_user(self.request.user)

    def detail_url(self, anchor: str = "") -> str:
        record = self.get_record()
        url = reverse("records:detail", args=[self.tenant.slug, record.local_id])
        return f"{url}#{anchor}" if anchor else url

    # Context pieces, shared by the full page and the partials that htmx swaps in.

    def remote_id_rows(self, record: Record) -> list[dict]:
        remote_ids = remote_ids_of(record)
        connection_ids = {row.connection_id for row in remote_ids}
        # A record is a row of an integration's References page only when the integration's
        # source knows it; a link to any other integration would open an empty search.
        integrations = [
            integration
            for integration in integrations_of(record)
            if integration.source_id in connection_ids
        ]
        rows = []
        for row in remote_ids:
            links = []
            for integration in integrations:
                if row.connection_id not in (integration.source_id, integration.target_id):
                    continue
                if record.record_type not in integration.synced_entity_types:
                    continue
                side = "source" if integration.source_id == row.connection_id else "target"
                links.append(
                    {
                        "integration": integration,
                        "side": side,
                        "url": references_url(
                            self.tenant.slug, integration, record.record_type, row.remote_id
                        ),
                    }
                )
            is_source = any(link["side"] == "source" for link in links)
            rows.append({"remote": row, "links": links, "is_source": is_source})
        return rows

    def custom_data_groups(self, record: Record) -> list[dict]:
        """Entries grouped by connection (unscoped first), then module, then key."""
        items = custom_data_of(record)
        items.sort(
            key=lambda i: (
                i.connection_id is not None,
                i.connection.name.lower() if i.connection_id else "",
                i.connection_id or 0,
                i.module_id,
                i.key,
            )
        )
        groups = []
        for connection_pk, in_connection in groupby(items, key=lambda i: i.connection_id):
            in_connection = list(in_connection)
            modules = [
                {
                    "module_id": module_id,
                    "owned_by_connector": owned_by_connector(module_id),
                    "items": list(entries),
                }
                for module_id, entries in groupby(in_connection, key=lambda i: i.module_id)
            ]
            groups.append(
                {
                    "connection": in_connection[0].connection if connection_pk else None,
                    "modules": modules,
                    "count": len(in_connection),
                }
            )
        return groups

    def history_context(self, record: Record) -> dict:
        entries = list(record_history(record)[: HISTORY_LIMIT + 1])
        return {"history": entries[:HISTORY_LIMIT], "history_more": len(entries) > HISTORY_LIMIT}

    def custom_data_context(self, record: Record, **forms) -> dict:
        groups = self.custom_data_groups(record)
        can_edit = self.request.membership.is_admin
        add_form = forms.get("add_form")
        if add_form is None and can_edit:
            add_form = CustomDataAddForm(record=record, connections=connections_of(record))
        return {
            "record": record,
            "custom_data_groups": groups,
            "custom_data_count": sum(group["count"] for group in groups),
            "can_edit": can_edit,
            "add_form": add_form,
            "editing": forms.get("editing"),
            "edit_form": forms.get("edit_form"),
            "deleting": forms.get("deleting"),
        }

    def detail_context(self, **forms) -> dict:
        record = self.get_record()
        remote_id_rows = self.remote_id_rows(record)
        return {
            "record": record,
            "lead": leading_remote_id(
                (row["remote"] for row in remote_id_rows),
                {row["remote"].connection_id for row in remote_id_rows if row["is_source"]},
            ),
            "type_label": type_label(record.record_type),
            "type_singular": EntityType(record.record_type).name.capitalize()
            if record.record_type in EntityType.values
            else record.record_type.replace("_", " ").capitalize(),
            "remote_id_rows": remote_id_rows,
            "data_json": json.dumps(record.data, indent=2, ensure_ascii=False, sort_keys=True),
            **self.custom_data_context(record, **forms),
            **self.history_context(record),
            "refused_writes": refusals.shown_on(record) if record.has_refused_writes else [],
        }

    def render_detail(self, status: int = 200, **forms):
        return render(
            self.request, "records/record_detail.html", self.detail_context(**forms), status=status
        )

    def changed_response(self, message: str):
        """After a change: the custom data section, and out of band the header and history."""
        if not self.request.htmx:
            messages.success(self.request, message)
            return HttpResponseRedirect(self.detail_url("custom-data"))
        messages.success(self.request, message)
        record = records_for_their_page(self.tenant).get(pk=self.get_record().pk)
        record.tenant = self.tenant
        self._record = record
        context = {**self.custom_data_context(record), **self.history_context(record)}
        context["record"] = record
        response = render(self.request, "records/partials/custom_data_changed.html", context)
        return reswap(retarget(response, "#custom-data"), "outerHTML")


class RecordDetailView(RecordMixin, View):
    """One record: header, remote ids in every connection, custom data, data, history."""

    def get(self, request, *args, **kwargs):
        return self.render_detail()


class CustomDataAddView(RecordMixin, View):
    """Admins add an entry; errors come back next to their field (422)."""

    admin_required = True

    def get(self, request, *args, **kwargs):
        return HttpResponseRedirect(self.detail_url("custom-data-add"))

    def post(self, request, *args, **kwargs):
        record = self.get_record()
        form = CustomDataAddForm(request.POST, record=record)
        saved = form.save(record, self.actor) if form.is_valid() else None
        if saved is None:
            if request.htmx:
                context = {"record": record, "form": form, "can_edit": True}
                return render(
                    request, "records/partials/custom_data_add_form.html", context, status=422
                )
            return self.render_detail(status=422, add_form=form)
        return self.changed_response(f"Added {saved.full_key}.")


class CustomDataItemView(RecordMixin, View):
    """One entry's row as shown (what Cancel swaps back in)."""

    def get(self, request, *args, **kwargs):
        item = self.get_item()
        if not request.htmx:
            return HttpResponseRedirect(self.detail_url(f"cd-{item.pk}"))
        context = {
            "record": self.get_record(),
            "item": item,
            "can_edit": request.membership.is_admin,
        }
        return render(request, "records/partials/custom_data_row.html", context)


class CustomDataEditView(RecordMixin, View):
    """Admins change an entry's type and value inline. A connector's module needs a tick."""

    admin_required = True

    def respond(self, item, form, status=200):
        if self.request.htmx:
            context = {"record": self.get_record(), "item": item, "form": form}
            return render(
                self.request, "records/partials/custom_data_edit_row.html", context, status=status
            )
        return self.render_detail(status=status, editing=item.pk, edit_form=form)

    def get(self, request, *args, **kwargs):
        item = self.get_item()
        return self.respond(item, CustomDataEditForm(item=item))

    def post(self, request, *args, **kwargs):
        item = self.get_item()
        form = CustomDataEditForm(request.POST, item=item)
        saved = form.save(self.get_record(), self.actor) if form.is_valid() else None
        if saved is None:
            return self.respond(item, form, status=422)
        return self.changed_response(f"Saved {saved.full_key}.")


class CustomDataDeleteView(RecordMixin, View):
    """Admins delete an entry in two steps: the row asks, then a POST with confirm=yes."""

    admin_required = True

    def get(self, request, *args, **kwargs):
        item = self.get_item()
        if request.htmx:
            context = {"record": self.get_record(), "item": item}
            return render(request, "records/partials/custom_data_delete_row.html", context)
        return self.render_detail(deleting=item.pk)

    def post(self, request, *args, **kwargs):
        item = self.get_item()
        if request.POST.get("confirm") != "yes":
            return self.get(request, *args, **kwargs)
        full_key = item.full_key
        delete_custom_data(item, self.actor)
        return self.changed_response(f"Deleted {full_key}.")

"""The References page: one integration, one entity type per tab, HTMX for every in-page change.

Every URL renders a full page without HTMX; with HTMX it renders the partial its target asks
for (`request.htmx.target`). Rules live in references.services, the table query in
references.queries; these views only connect the two to templates. ReferencesPageMixin holds
what every view of the page renders (the table, its counts, one row); the row actions are in
views_rows.py, delete all and restore in views_restore.py.
"""

from __future__ import annotations

from functools import cached_property
from urllib.parse import urlencode

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django_htmx.http import push_url

from common.display_counts import Count, capped_count
from common.entities import EntityType, slug_of
from common.lists import ListMixin
from common.paging import DEFAULT_PAGE_SIZE
from records.jobs import active_restore, jobs_to_show
from records.models import Record

from .filters import DEFAULTS, ReferenceFilterSet
from .findings.lost import losses
from .forms import ReferenceForm
from .mixins import IntegrationMixin
from .queries import (
    KEYSETS,
    LINKED_CHOICES,
    base_reference_rows,
    matched_side,
    restorable_delete_alls,
    tab_locator,
)

TABLE_TEMPLATE = "references/partials/table_response.html"


def singular(record_type: str) -> str:
    return record_type.replace("_", " ")


class ReferencesPageMixin(IntegrationMixin, ListMixin):
    """The References table of the URL's tab: its filters, page, counts and rows."""

    filterset_class = ReferenceFilterSet
    template_name = "references/reference_list.html"
    partial_template_name = "references/partials/page.html"

    def list_data(self):
        """Filter state: the query string on GET, the included filter form on POST."""
        return self.request.GET if self.request.method == "GET" else self.request.POST

    def get_filterset_kwargs(self) -> dict:
        return {"integration": self.integration, "record_type": self.record_type}

    def resolve_objects(self) -> None:
        if "local_id" in self.kwargs:
            self.get_record()

    @cached_property
    def params(self) -> dict:
        # Read once per request: the counts, the table and the links all need it.
        return self.filterset.params

    @property
    def state(self) -> dict:
        """What the page's links carry on: the filters and the page size."""
        return {**self.params, "per_page": self.per_page}

    @property
    def filtered(self) -> bool:
        params = self.params
        return bool(params["q"] or params["linked"] != "all" or params["modified_after"])

    def shown_instead(self, name: str) -> str:
        default = DEFAULTS.get(name)
        return f"showing {default}" if default else "not filtered by it"

    def list_template(self) -> str:
        """ListMixin's choice (a history restore gets the full page), and the table alone
        when htmx swaps only the table."""
        htmx = self.request.htmx
        if htmx and not htmx.history_restore_request and htmx.target == "ref-table":
            return TABLE_TEMPLATE
        return super().list_template()

    def get_record(self) -> Record:
        return self.get_object_or_404(
            Record.objects.defer("data"),
            local_id=self.kwargs["local_id"],
            record_type=self.record_type,
        )

    def list_url(self, entity: str | None = None, **params) -> str:
        """The canonical (bookmarkable) URL: only the parameters that differ from defaults."""
        query = {}
        for name, value in params.items():
            if value in (None, "") or DEFAULTS.get(name, object()) == value:
                continue
            if name == "page" and value == 1:
                continue
            if name == "before" and params.get("page") == 1:
                continue  # page 1 is page 1: no position needed
            if name == "per_page" and value == DEFAULT_PAGE_SIZE:
                continue
            if name == "modified_after":
                value = timezone.localtime(value).date().isoformat()
            query[name] = value
        url = self.url("list", entity)
        return f"{url}?{urlencode(query)}" if query else url

    # --- context -------------------------------------------------------------------------

    def base_context(self) -> dict:
        integration = self.integration
        return {
            "tenant": self.tenant,
            "integration": integration,
            "entity": self.entity,
            "record_type": self.record_type,
            "entity_label": EntityType(self.record_type).label,
            "singular": singular(self.record_type),
            "is_admin": self.is_admin,
            "subtitle": integration_subtitle(integration),
            "plain_url": self.url("list"),
            "tab_jobs": (
                jobs_to_show(self.tenant, integration, self.record_type)
                if self.loaded_with_integration("has_recent_jobs")
                else []
            ),
        }

    def row_for(self, record: Record, *, q: str = ""):
        row = base_reference_rows(self.integration, self.record_type).filter(record=record).first()
        if row is not None:
            row.matched = matched_side(row, q)
            row.urls = self.row_urls(record)
            # An unlinked row says why at once (the one just deleted: "lost just now by
            # you"), not only after a reload of the table.
            row.loss = (
                None
                if row.target_remote_id
                else losses(self.integration, self.record_type, [row.record_id]).get(row.record_id)
            )
        return row

    def row_context(self, record: Record, **extra) -> dict:
        return {
            **self.base_context(),
            "row": self.row_for(record),
            "urls": self.row_urls(record),
            **extra,
        }

    @cached_property
    def _row_url_parts(self) -> dict:
        """Each row URL reversed once per request, split around the local id; a page of 50
        rows would otherwise reverse 300 URLs, a fifth of the page's server time."""
        slot = "0" * 32  # a valid local id; the local id is the last variable part of each URL
        urls = {
            name: self.url(name, local_id=slot) for name in ("row", "edit", "delete", "history")
        }
        urls["record"] = reverse("records:detail", args=[self.tenant.slug, slot])
        return {name: url.rpartition(slot)[::2] for name, url in urls.items()}

    def row_urls(self, record: Record) -> dict:
        local_id = record.local_id
        return {
            name: f"{before}{local_id}{after}"
            for name, (before, after) in self._row_url_parts.items()
        }

    def counts_context(self) -> dict:
        """Tabs and the Linked filter with their counts (also sent out-of-band after changes)."""
        state = self.state
        kept = self.kept_counts
        return {
            **self.base_context(),
            "params": self.params,
            "tabs": self.tabs(kept),
            "kept": kept[self.record_type],
            "unlinked_count": Count(kept[self.record_type].unlinked),
            "linked_links": [
                (value, label, self.list_url(**{**state, "linked": value}))
                for value, label in LINKED_CHOICES
            ],
            "banner": self.banner(),
        }

    def table_context(self, *, pinned: Record | None = None, page_number: int | None = None):
        """Everything the tabs, toolbar and table need; a constant number of queries."""
        q = self.params["q"]
        rows = self.filterset.qs
        if pinned is not None:
            rows = rows.exclude(record=pinned)
        # Keyset paging ("Next"/"Previous" carry a row position), except for search results,
        # which are ordered by match rank first; see common.paging.keyset_page. A page opened
        # by number starts where `locator` says, or comes from its ids (numbered_page).
        keyset = KEYSETS.get(self.params["sort"]) if not q and pinned is None else None
        page, after, before = self.paginate(rows, keyset, page_number, locate=self.locator())
        pinned_row = self.row_for(pinned, q=q) if pinned is not None else None
        self.annotate_rows(page.rows)
        tab_counts = self.counts_context()
        total, split = (
            self.total(rows, tab_counts) if pinned is None else (capped_count(rows), None)
        )
        return {
            **tab_counts,
            **self.paging_context(),
            **self.page_links(page, after, before),
            **(self.past_the_end(total) if not page.rows and page.number > 1 else {}),
            "page": page,
            "pinned": pinned_row,
            "total": total,
            "split": split,
            "filtered": self.filtered,
        }

    def past_the_end(self, total: Count) -> dict:
        """Where to go from a page number past the last page: the last page, when the count
        is exact, and the first."""
        state = self.state
        links = {"first_page_url": self.list_url(**state)}
        if total.exact and total.value:
            last = -(-total.value // self.per_page)
            links.update(last_page=last, last_page_url=self.list_url(**state, page=last))
        return links

    @property
    def narrowed(self) -> bool:
        """Whether a filter narrows the rows: any valid value but the sort's and the defaults
        (a filter added to the filterset counts without being named here)."""
        filterset = self.filterset
        if not filterset.is_bound:
            return False
        filterset.form.is_valid()  # cleaned_data: the valid values, which are applied
        return any(
            value not in (None, "", DEFAULTS.get(name))
            for name, value in filterset.form.cleaned_data.items()
            if name != "sort"
        )

    def locator(self):
        """Where a numbered page of the unfiltered tab starts, read from an index
        (queries.tab_locator); None when a filter narrows the rows (the page then comes
        from its ids, common.paging.numbered_page)."""
        if self.narrowed:
            return None
        record_type = self.record_type
        return tab_locator(
            self.integration,
            record_type,
            self.params["sort"],
            lambda: self.kept_counts[record_type].total,
        )

    def annotate_rows(self, rows) -> None:
        """Each row's search match, its URLs and, when unlinked, the link it lost (if any)."""
        unlinked_on_page = [row.record_id for row in rows if not row.target_remote_id]
        # No lost link in the tab (the kept count says so): nothing to look up.
        lost = (
            losses(self.integration, self.record_type, unlinked_on_page)
            if unlinked_on_page and self.kept_counts[self.record_type].lost
            else {}
        )
        for row in rows:
            row.matched = matched_side(row, self.params["q"])
            row.urls = self.row_urls(row.record)
            row.loss = lost.get(row.record_id)

    def total(self, rows, tab_counts: dict, *, pinned=None):
        """The count under the table, and the (linked, unlinked) split it is made of, if any.
        A kept count wherever one says it; a search, a date filter or a pinned row (kept
        out of `rows`) counts the rows."""
        params = self.params
        if pinned is not None:
            return capped_count(rows), None
        linked_count = next(tab["count"] for tab in tab_counts["tabs"] if tab["current"])
        unlinked_count = tab_counts["unlinked_count"]
        # Unfiltered, the table is the tab's linked references plus the unlinked ones: the
        # footer says so with the same two numbers, so the counts on the page agree.
        if not self.filtered and linked_count.exact and unlinked_count.exact:
            split = (linked_count, unlinked_count)
            return Count(linked_count.value + unlinked_count.value), split
        if not (params["q"] or params["modified_after"]):
            kept = tab_counts["kept"]
            kept_total = {
                "unlinked": unlinked_count,  # the count the filter shows
                "linked": Count(kept.linked),
                "lost": Count(kept.lost),
                "never": Count(kept.never_linked),
            }.get(params["linked"])
            if kept_total is not None:
                return kept_total, None
        return capped_count(rows), None

    def page_links(self, page, after: str, before: str) -> dict:
        state, sort = self.state, self.params["sort"]
        return {
            "sort_links": {
                "modified": self.list_url(
                    **{**state, "sort": "modified" if sort == "-modified" else "-modified"}
                ),
                "source": self.list_url(
                    **{**state, "sort": "-source" if sort == "source" else "source"}
                ),
            },
            "prev_url": (
                self.list_url(**state, page=page.number - 1, before=page.first_position)
                if page.has_previous
                else ""
            ),
            "next_url": (
                self.list_url(**state, page=page.number + 1, after=page.last_position)
                if page.has_next
                else ""
            ),
            "current_url": self.list_url(**state, page=page.number, after=after, before=before),
            "export_query": self.list_url(**self.params).partition("?")[2],
            "add_url": self.url("add"),
            "delete_all_url": self.url("delete_all"),
        }

    def tabs(self, kept) -> list[dict]:
        return [
            {
                "entity": slug_of(record_type),
                "label": EntityType(record_type).label,
                "url": self.list_url(slug_of(record_type)),
                "count": Count(kept[record_type].linked),
                "current": record_type == self.record_type,
            }
            for record_type in self.integration.synced_entity_types
        ]

    def banner(self):
        """The latest delete-all of this tab, while it can still be restored (admins only)."""
        if not self.is_admin or not self.loaded_with_integration("has_restorable_delete_all"):
            return None
        batch = restorable_delete_alls(self.tenant, self.integration, self.record_type).first()
        if batch is not None and active_restore(batch) is not None:
            return None  # its restore is running: the job's progress shows instead
        return batch

    def render_table(self, *, status: int = 200, pinned=None, extra=None):
        """The table with its out-of-band companions (tabs, counts, banner, toasts)."""
        context = {**self.table_context(pinned=pinned, page_number=1 if pinned else None)}
        context.update(extra or {})
        return render(self.request, TABLE_TEMPLATE, context, status=status)

    def render_group(self, template: str, record: Record, *, status: int = 200, **extra):
        """One reference's <tbody> (row, edit row, confirm row or history) plus toasts."""
        context = self.row_context(record, **extra)
        return render(self.request, template, context, status=status)


def integration_subtitle(integration) -> str:
    """The integration's own name and connectors, where they add something to the heading."""
    parts = []
    default_name = f"{integration.source} → {integration.target}"
    # Names written with "->" before "→" was the one arrow style say nothing new either.
    if integration.name and integration.name.replace("->", "→") != default_name:
        parts.append(integration.name)
    connectors = (integration.source.connector.name, integration.target.connector.name)
    if connectors != (integration.source.name, integration.target.name):
        parts.append(" → ".join(connectors))
    return " · ".join(parts)


class ReferenceListView(ReferencesPageMixin, View):
    def get(self, request, *args, **kwargs):
        context = self.table_context()
        if request.GET.get("add") and not request.htmx:
            context["add_form"] = ReferenceForm()
        response = render(request, self.list_template(), context)
        if request.htmx:
            push_url(response, context["current_url"])
        return response


class ReferenceRowView(ReferencesPageMixin, View):
    """One reference as a plain row (Cancel of an edit or delete, Hide history)."""

    def get(self, request, *args, **kwargs):
        record = self.get_record()
        if not request.htmx:
            # Opened as a page, not swapped in: show the reference in its table.
            row = self.row_for(record)
            return HttpResponseRedirect(self.list_url(q=row.remote_id if row else ""))
        return self.render_group("references/partials/row_group.html", record)

"""The References page: one integration, one entity type per tab, HTMX for every in-page change.

Every URL renders a full page without HTMX; with HTMX it renders the partial its target asks
for (`request.htmx.target`). Rules live in references.services, the table query in
references.selectors; these views only connect the two to templates.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views import View
from django_htmx.http import HttpResponseClientRedirect

from common.counting import Count, capped_count
from common.entities import EntityType, record_type_of, slug_of
from common.errors import DomainError
from common.paging import DEFAULT_PAGE_SIZE, PAGE_SIZES, paged
from integrations.models import Integration
from integrations.tenancy import TenantMixin
from records import counts
from records.errors import StaleEdit
from records.jobs import active_restore, has_recent_jobs, jobs_to_show
from records.models import AuditEntry, Batch, Record
from records.queries import record_history
from records.services import Actor

from . import health, services
from .filters import DEFAULTS, ReferenceFilterSet
from .forms import DeleteAllForm, EditReferenceForm, ReferenceForm
from .selectors import KEYSETS, LINKED_CHOICES, base_reference_rows, matched_side

BANNER_HOURS = 24
HISTORY_LIMIT = 25


def singular(record_type: str) -> str:
    return record_type.replace("_", " ")


class ReferencesMixin(TenantMixin):
    """Resolves the integration and entity type from the URL, scoped to the tenant (else 404)."""

    @cached_property
    def integration(self):
        # One query brings what every tab shows besides its rows: the connections, the kept
        # counts, and whether the tab has jobs or a restorable delete-all to ask for at all.
        integrations = counts.with_kept_counts(
            Integration.objects.for_tenant(self.tenant).select_related(
                "source__connector", "target__connector"
            )
        )
        record_type = record_type_of(self.kwargs.get("entity", ""))
        if record_type is not None:
            integrations = integrations.annotate(
                has_recent_jobs=has_recent_jobs(self.tenant, record_type),
                has_restorable_delete_all=Exists(
                    restorable_delete_alls(self.tenant, OuterRef("pk"), record_type)
                ),
            )
        integration = self.get_object_or_404(integrations, pk=self.kwargs["integration_id"])
        integration.tenant = self.tenant  # the membership's, already loaded: no query
        return integration

    def loaded_with_integration(self, flag: str) -> bool:
        """A flag the integration's query brought (`has_recent_jobs`...). True when unsure:
        after a change in this request (any unsafe method) it must be asked afresh."""
        if self.request.method not in ("GET", "HEAD"):
            return True
        return getattr(self.integration, flag, True)

    @cached_property
    def entity(self) -> str:
        return self.kwargs["entity"]

    @cached_property
    def record_type(self) -> str:
        record_type = record_type_of(self.entity)
        if record_type is None or record_type not in self.integration.synced_entity_types:
            raise Http404("This integration does not sync that entity type.")
        return record_type

    def get_record(self) -> Record:
        return self.get_object_or_404(
            Record.objects.defer("data"),
            local_id=self.kwargs["local_id"],
            record_type=self.record_type,
        )

    @property
    def actor(self) -> Actor:
        return Actor.for_user(self.request.user)

    @property
    def is_admin(self) -> bool:
        return self.request.membership.is_admin

    # --- urls ----------------------------------------------------------------------------

    def url(self, name: str, entity: str | None = None, **kwargs) -> str:
        return reverse(
            f"references:{name}",
            kwargs={
                "tenant_slug": self.tenant.slug,
                "integration_id": self.integration.pk,
                "entity": entity or self.entity,
                **kwargs,
            },
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

    def filter_data(self):
        """Filter state: the query string on GET, the included filter form on POST."""
        return self.request.GET if self.request.method == "GET" else self.request.POST

    @property
    def kept_counts(self) -> dict[str, counts.Counts]:
        """Linked, unlinked and lost per entity type, as the change engine keeps them: exact
        (records.counts). A GET reads those loaded with the integration; after a change in
        this request they are read afresh (one query), as the change may have moved them."""
        if self.request.method in ("GET", "HEAD"):
            kept = counts.preloaded_counts(self.integration)
            if kept is not None:
                return kept
        return counts.kept_counts(self.integration)

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

    def filter_state(self):
        return self._filter_state

    @cached_property
    def _filter_state(self):
        # Read once per request: the counts, the table and the links all need it.
        data = self.filter_data()
        filterset = ReferenceFilterSet(
            data, integration=self.integration, record_type=self.record_type
        )
        params = filterset.params
        per_page = _int(data.get("per_page"), DEFAULT_PAGE_SIZE)
        if per_page not in PAGE_SIZES:
            per_page = DEFAULT_PAGE_SIZE
        return filterset, params, per_page

    def ignored_params(self) -> list[str]:
        """URL parameters that could not be used, each with what is shown instead."""
        filterset, params, per_page = self.filter_state()
        data = self.filter_data()
        ignored = []
        if filterset.is_bound and not filterset.form.is_valid():
            for name in filterset.form.errors:
                if data.get(name) not in (None, ""):
                    default = DEFAULTS.get(name)
                    instead = f"showing {default}" if default else "not filtered by it"
                    ignored.append(f"{name}={data.get(name)[:40]} is not valid: {instead}")
        asked = data.get("per_page")
        if asked not in (None, "") and str(per_page) != asked:
            sizes = ", ".join(str(size) for size in PAGE_SIZES)
            ignored.append(f"per_page={asked[:20]} is not one of {sizes}: showing {per_page}")
        return ignored

    def counts_context(self) -> dict:
        """Tabs and the Linked filter with their counts (also sent out-of-band after changes)."""
        _, params, per_page = self.filter_state()
        state = {**params, "per_page": per_page}
        kept = self.kept_counts
        return {
            **self.base_context(),
            "params": params,
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
        filterset, params, per_page = self.filter_state()
        data = self.filter_data()
        if page_number is None:
            page_number = _int(data.get("page"), 1)
        rows = filterset.qs
        if pinned is not None:
            rows = rows.exclude(record=pinned)
        # Keyset paging ("Next"/"Previous" carry a row position), except for search results,
        # which are ordered by match rank and short; see common.paging.keyset_page.
        keyset = KEYSETS.get(params["sort"]) if not params["q"] and pinned is None else None
        page, after, before = paged(
            rows,
            keyset,
            page_number,
            per_page,
            after=data.get("after", ""),
            before=data.get("before", ""),
        )
        pinned_row = self.row_for(pinned, q=params["q"]) if pinned is not None else None
        unlinked_on_page = [row.record_id for row in page.rows if not row.target_remote_id]
        # No lost link in the tab (the kept count says so): nothing to look up.
        lost = (
            health.losses(self.integration, self.record_type, unlinked_on_page)
            if unlinked_on_page and self.kept_counts[self.record_type].lost
            else {}
        )
        for row in page.rows:
            row.matched = matched_side(row, params["q"])
            row.urls = self.row_urls(row.record)
            row.loss = lost.get(row.record_id)
        state = {**params, "per_page": per_page}
        filtered = bool(params["q"] or params["linked"] != "all" or params["modified_after"])
        tab_counts = self.counts_context()
        only_unlinked = params["linked"] == "unlinked" and not (
            params["q"] or params["modified_after"]
        )
        # The other Linked filters alone are kept counts too.
        kept = tab_counts["kept"]
        kept_total = (
            None
            if params["q"] or params["modified_after"]
            else {
                "linked": Count(kept.linked),
                "lost": Count(kept.lost),
                "never": Count(kept.never_linked),
            }.get(params["linked"])
        )
        linked_count = next(tab["count"] for tab in tab_counts["tabs"] if tab["current"])
        unlinked_count = tab_counts["unlinked_count"]
        # Unfiltered, the table is the tab's linked references plus the unlinked ones: the
        # footer says so with the same two numbers, so the counts on the page agree.
        split = (
            (linked_count, unlinked_count)
            if not filtered and pinned is None and linked_count.exact and unlinked_count.exact
            else None
        )
        if split:
            total = Count(linked_count.value + unlinked_count.value)
        elif only_unlinked and pinned is None:
            total = unlinked_count  # the count the filter shows
        elif kept_total is not None and pinned is None:
            total = kept_total
        else:
            total = capped_count(rows)
        return {
            **tab_counts,
            "filterset": filterset,
            "per_page": per_page,
            "page_sizes": PAGE_SIZES,
            "page": page,
            "pinned": pinned_row,
            "total": total,
            "split": split,
            "ignored_params": self.ignored_params(),
            "filtered": filtered,
            "sort_links": {
                "modified": self.list_url(
                    **{
                        **state,
                        "sort": "modified" if params["sort"] == "-modified" else "-modified",
                    }
                ),
                "source": self.list_url(
                    **{**state, "sort": "-source" if params["sort"] == "source" else "source"}
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
            "export_query": self.list_url(**params).partition("?")[2],
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
        response = render(
            self.request, "references/partials/table_response.html", context, status=status
        )
        return response

    def render_group(self, template: str, record: Record, *, status: int = 200, **extra):
        """One reference's <tbody> (row, edit row, confirm row or history) plus toasts."""
        context = self.row_context(record, **extra)
        return render(self.request, template, context, status=status)


def restorable_delete_alls(tenant, integration, record_type: str):
    """A tab's delete-alls of the last day not yet restored, newest first; `integration` may
    be an OuterRef."""
    return (
        Batch.objects.for_tenant(tenant)
        .filter(
            integration=integration,
            record_type=record_type,
            kind=Batch.Kind.DELETE_ALL,
            restored_at__isnull=True,
            created_at__gte=timezone.now() - timedelta(hours=BANNER_HOURS),
            row_count__gt=0,
        )
        .order_by("-created_at", "-pk")
    )


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


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class ReferenceListView(ReferencesMixin, View):
    def get(self, request, *args, **kwargs):
        context = self.table_context()
        if request.htmx and request.htmx.target == "ref-table":
            template = "references/partials/table_response.html"
        elif request.htmx:
            template = "references/partials/page.html"
        else:
            template = "references/reference_list.html"
        if request.GET.get("add") and not request.htmx:
            context["add_form"] = ReferenceForm()
        response = render(request, template, context)
        if request.htmx:
            response["HX-Push-Url"] = context["current_url"]
        return response


class ReferenceRowView(ReferencesMixin, View):
    """One reference as a plain row (Cancel of an edit or delete, Hide history)."""

    def get(self, request, *args, **kwargs):
        record = self.get_record()
        if not request.htmx:
            # Opened as a page, not swapped in: show the reference in its table.
            row = self.row_for(record)
            return HttpResponseRedirect(self.list_url(q=row.remote_id if row else ""))
        return self.render_group("references/partials/row_group.html", record)


class AddReferenceView(ReferencesMixin, View):
    def get(self, request, *args, **kwargs):
        if not request.htmx:
            return HttpResponseRedirect(self.list_url() + "?add=1")
        return self.render_form(ReferenceForm())

    def render_form(self, form, status=200):
        template = (
            "references/partials/add_form.html"
            if self.request.htmx
            else "references/reference_list.html"
        )
        context = (
            {**self.base_context(), "add_url": self.url("add"), "add_form": form}
            if self.request.htmx
            else {**self.table_context(), "add_form": form}
        )
        return render(self.request, template, context, status=status)

    def post(self, request, *args, **kwargs):
        form = ReferenceForm(request.POST)
        if form.is_valid():
            try:
                record = services.add_reference(
                    self.integration, self.record_type, form.reference_input(), self.actor
                )
            except DomainError as error:
                form.add_domain_error(error)
            else:
                row = self.row_for(record)
                messages.success(
                    request,
                    f"Linked {row.remote_id} to {row.target_remote_id or '-'}."
                    + form.trimmed_note(),
                )
                if not request.htmx:
                    return HttpResponseRedirect(self.list_url())
                response = self.render_table(pinned=record, extra={"close_add": True})
                response["HX-Retarget"] = "#ref-table"
                response["HX-Reswap"] = "outerHTML"
                return response
        return self.render_form(form, status=422)


class EditReferenceView(ReferencesMixin, View):
    def get(self, request, *args, **kwargs):
        record = self.get_record()
        row = self.row_for(record)
        form = EditReferenceForm(
            initial={
                "source_id": row.remote_id if row else "",
                "source_ref": row.remote_ref if row else "",
                "target_id": (row.target_remote_id or "") if row else "",
                "target_ref": (row.target_remote_ref or "") if row else "",
                "version": record.version,
            }
        )
        return self.render_edit(record, form)

    def render_edit(self, record, form, status=200):
        template = (
            "references/partials/row_edit.html"
            if self.request.htmx
            else "references/reference_edit.html"
        )
        return self.render_group(
            template, record, status=status, form=form, list_url=self.list_url()
        )

    def post(self, request, *args, **kwargs):
        record = self.get_record()
        form = EditReferenceForm(request.POST)
        if form.is_valid():
            try:
                record = services.edit_reference(
                    self.integration,
                    record,
                    form.reference_input(),
                    self.actor,
                    version=form.cleaned_data["version"],
                )
            except StaleEdit as error:
                # Keep what the user typed, show what is there now, and let a second save
                # (deliberately) overwrite it.
                form.stale = error
                data = request.POST.copy()
                data["version"] = error.current["version"]
                stale_form = EditReferenceForm(data)
                stale_form.is_valid()
                stale_form.stale = error
                return self.render_edit(record, stale_form, status=409)
            except DomainError as error:
                form.add_domain_error(error)
                return self.render_edit(record, form, status=error.status)
            messages.success(request, "Saved." + form.trimmed_note())
            if not request.htmx:
                return HttpResponseRedirect(self.list_url())
            return self.render_group(
                "references/partials/row_group.html",
                record,
                new=True,
                with_toasts=True,
                with_counts=True,
                **self.counts_context(),
            )
        return self.render_edit(record, form, status=422)


class DeleteReferenceView(ReferencesMixin, View):
    admin_required = True

    def get(self, request, *args, **kwargs):
        template = (
            "references/partials/row_delete.html"
            if request.htmx
            else "references/reference_delete.html"
        )
        return self.render_group(template, self.get_record(), list_url=self.list_url())

    def post(self, request, *args, **kwargs):
        record = self.get_record()
        version = _int(request.POST.get("version"), None)
        try:
            batch = services.delete_reference(self.integration, record, self.actor, version=version)
        except DomainError as error:
            messages.error(request, error.message)
            if not request.htmx:
                return HttpResponseRedirect(self.list_url())
            return self.render_group(
                "references/partials/row_group.html", record, with_toasts=True, status=200
            )
        restore_url = reverse(
            "references:restore", kwargs={"tenant_slug": self.tenant.slug, "batch_id": batch.pk}
        )
        messages.success(
            request,
            format_html(
                '{}. <form method="post" action="{}" class="inline" hx-post="{}" '
                'hx-target="#ref-table" hx-swap="outerHTML" hx-include="#ref-filters">'
                '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
                '<button type="submit" class="btn btn-small">Undo</button></form>',
                batch.description,
                restore_url,
                restore_url,
                get_token(request),
            ),
        )
        if not request.htmx:
            return HttpResponseRedirect(self.list_url())
        record.refresh_from_db()
        return self.render_group(
            "references/partials/row_group.html",
            record,
            with_toasts=True,
            with_counts=True,
            **self.counts_context(),
        )


class DeleteAllView(ReferencesMixin, View):
    admin_required = True
    template_name = "references/delete_all.html"

    def get(self, request, *args, **kwargs):
        return self.render_page(DeleteAllForm(expected=self.entity))

    def render_page(self, form, status=200):
        kept = self.kept_counts[self.record_type]
        count, unlinked = kept.linked, kept.unlinked
        context = {
            **self.base_context(),
            "form": form,
            "count": count,
            # The Health page's forecast, for what this would leave behind.
            "forecast_after": health.creates_after(
                self.integration, self.record_type, count + unlinked
            ),
            "list_url": self.list_url(),
            "delete_all_url": self.url("delete_all"),
        }
        return render(self.request, self.template_name, context, status=status)

    def post(self, request, *args, **kwargs):
        form = DeleteAllForm(request.POST, expected=self.entity)
        if not form.is_valid():
            return self.render_page(form, status=422)
        count = self.kept_counts[self.record_type].linked
        job = services.start_delete_all_job(self.integration, self.record_type, self.actor, count)
        if job is not None:
            messages.info(
                request,
                f"Deleting {count:,} {singular(self.record_type)} references in the background. "
                "You can leave this page; the Restore button appears here when it is done.",
            )
            return HttpResponseRedirect(self.list_url())
        batch = services.delete_all_references(self.integration, self.record_type, self.actor)
        messages.success(
            request, f"Deleted {batch.row_count} {singular(self.record_type)} references."
        )
        return HttpResponseRedirect(self.list_url())


class HistoryView(ReferencesMixin, View):
    """A reference's audit trail, under its row, with "Revert to this" on past values."""

    def get(self, request, *args, **kwargs):
        return self.render_history(self.get_record())

    def render_history(self, record, *, status=200, error=None):
        current = services.reference_snapshot(self.integration, record)
        # The same trail as the record page: its own entries and the bulk batches (delete
        # all, import) that took or gave one of its ids.
        entries = list(record_history(record)[:HISTORY_LIMIT])
        for entry in entries:
            url = self.url("revert", local_id=record.local_id, entry_id=entry.pk)
            entry.revert_url = (
                url if revertable(entry, entry.after, current, self.integration) else ""
            )
            entry.revert_before_url = ""
        # The values before the oldest change shown are known too (a reference a sync made has
        # no "Added" entry): offer them, unless a later entry already offers the same values.
        if entries:
            oldest = entries[-1]
            offered = [entry.after for entry in entries if entry.revert_url]
            if revertable(oldest, oldest.before, current, self.integration) and not any(
                same_reference(oldest.before, values) for values in offered
            ):
                url = self.url("revert", local_id=record.local_id, entry_id=oldest.pk)
                oldest.revert_before_url = f"{url}?to=before"
        template = (
            "references/partials/row_history.html"
            if self.request.htmx
            else "references/reference_history.html"
        )
        return self.render_group(
            template,
            record,
            status=status,
            entries=entries,
            version=record.version,
            history_error=error,
            with_toasts=True,
            list_url=self.list_url(),
        )


class RevertView(HistoryView):
    """POST reverts; a GET (a reload, a bookmark) shows the history it came from."""

    def get(self, request, *args, **kwargs):
        record = self.get_record()
        self.get_object_or_404(AuditEntry, pk=self.kwargs["entry_id"])  # another tenant's: 404
        return self.render_history(record)

    def post(self, request, *args, **kwargs):
        record = self.get_record()
        entry = self.get_object_or_404(AuditEntry, pk=self.kwargs["entry_id"], record=record)
        current = services.reference_snapshot(self.integration, record)
        after = entry.before if request.GET.get("to") == "before" else entry.after
        if not revertable(entry, after, current, self.integration):
            return self.render_history(
                record, status=409, error="These values can no longer be restored from here."
            )
        try:
            record = services.edit_reference(
                self.integration,
                record,
                services.ReferenceInput(
                    source_id=after["source_id"],
                    target_id=after["target_id"],
                    source_ref=after.get("source_ref") or "",
                    target_ref=after.get("target_ref") or "",
                ),
                self.actor,
                version=_int(request.POST.get("version"), record.version),
                revert=True,
            )
        except DomainError as error:
            record.refresh_from_db()
            return self.render_history(record, status=error.status, error=error.message)
        messages.success(request, f"Reverted to {describe(after)}.")
        if not request.htmx:
            return HttpResponseRedirect(self.list_url())
        return self.render_history(record)


def describe(snapshot) -> str:
    if not isinstance(snapshot, dict):
        return "-"
    if "count" in snapshot and len(snapshot) == 1:
        return f"{snapshot['count']} references"
    if "source_id" in snapshot or "target_id" in snapshot:

        def side(prefix):
            value = snapshot.get(f"{prefix}_id")
            if not value:
                return "not linked" if prefix == "target" else "-"
            ref = snapshot.get(f"{prefix}_ref")
            return f"{value} ({ref})" if ref else value

        return f"{side('source')} → {side('target')}"
    if "remote_id" in snapshot:
        return snapshot.get("remote_id") or "-"
    return ", ".join(f"{key} {value}" for key, value in snapshot.items())


REFERENCE_KEYS = ("source_id", "source_ref", "target_id", "target_ref")


def same_reference(one: dict, other: dict) -> bool:
    return all((one.get(key) or "") == (other.get(key) or "") for key in REFERENCE_KEYS)


def revertable(entry: AuditEntry, values, current: dict, integration) -> bool:
    """`values` (an entry's before or after) is a full past reference of this integration
    that differs from the current one."""
    if entry.integration_id not in (None, integration.pk) or not isinstance(values, dict):
        return False
    if not values.get("source_id") or not values.get("target_id"):
        return False
    return not same_reference(values, current)


class RestoreBatchView(TenantMixin, View):
    """Undo a delete or delete-all: the batch is looked up in the tenant (another's is 404)."""

    admin_required = True

    def get_batch(self) -> Batch:
        return self.get_object_or_404(
            Batch.objects.select_related("integration__source", "integration__target"),
            pk=self.kwargs["batch_id"],
        )

    def get(self, request, *args, **kwargs):
        """Without JavaScript (or from a bookmark): say what restoring does, then POST."""
        batch = self.get_batch()
        return render(request, "references/restore_confirm.html", {"batch": batch})

    def post(self, request, *args, **kwargs):
        batch = self.get_batch()
        actor = Actor.for_user(request.user)
        job = services.start_restore_job(batch, actor)
        if job is not None:
            messages.info(
                request,
                f"Restoring {batch.row_count:,} references in the background. "
                "You can leave this page.",
            )
            return self.redirect_to_tab(batch, full_page=True)
        try:
            count = services.restore_batch(batch, actor)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Restored {count} reference{'s' if count != 1 else ''}.")
        return self.redirect_to_tab(batch)

    def redirect_to_tab(self, batch, *, full_page: bool = False):
        request = self.request
        entity = slug_of(batch.record_type)
        if batch.integration is None or entity is None:
            return HttpResponseRedirect(reverse("tenant-home", args=[self.tenant.slug]))
        view = ReferencesMixin()
        view.request, view.kwargs = (
            request,
            {
                "tenant_slug": self.tenant.slug,
                "integration_id": batch.integration_id,
                "entity": entity,
            },
        )
        if request.htmx and full_page:
            return HttpResponseClientRedirect(view.list_url())
        if request.htmx and request.POST.get("tab") == entity:
            return view.render_table()
        if request.htmx:
            response = render(request, "partials/messages.html", {"oob": True})
            response["HX-Reswap"] = "none"
            return response
        return HttpResponseRedirect(view.list_url())

"""Undoing a batch, and the change most often undone: delete all.

RestoreBatchView is the one view that restores a batch, whatever wrote it: a delete or a
delete-all from the References page, an import, accepted suggestions, a Health or reconcile
fix. The `undo_button` tag (templatetags/references_tags.py) renders the Undo button that
posts to it; `undo_form` is the same button for a message built in a view.
"""

from __future__ import annotations

from functools import cached_property

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views import View
from django_htmx.http import HttpResponseClientRedirect, reswap

from common.entities import slug_of
from common.errors import DomainError
from records.models import Batch

from . import services
from .findings.wording import creates_after
from .forms import DeleteAllForm
from .templatetags.references_tags import undo_context
from .views_apply import PreviewApplyView, refusal_message
from .views_table import ReferencesPageMixin, singular

# What the References page deletes: restored in its tab, counted as references. Any other
# batch (an import, accepted suggestions, a fix) is "undone" and returns to where it started.
REFERENCE_DELETES = (Batch.Kind.DELETE, Batch.Kind.DELETE_ALL)


def undo_form(request, batch: Batch, label: str = "Undo", *, next_url="", in_table=False) -> str:
    """The Undo button as HTML, for a message built in a view (the import pages; the others
    render the `undo_button` tag in their template)."""
    context = {
        **undo_context(request, batch, label, next_url=next_url, in_table=in_table),
        "csrf_token": get_token(request),
    }
    # Rendered (so escaped) by the template: a message may carry it as HTML.
    return mark_safe(render_to_string("references/partials/undo_form.html", context).strip())


class DeleteAllView(ReferencesPageMixin, PreviewApplyView):
    """Delete all references of a tab. Its preview is the confirmation page (what goes, and
    the entity's name to type); the POST with the name typed applies it (a job when large)."""

    admin_required = True
    job_kind = "delete_all"

    def get(self, request, *args, **kwargs):
        return self.render_page(DeleteAllForm(expected=self.entity))

    @cached_property
    def form(self) -> DeleteAllForm:
        return DeleteAllForm(self.request.POST, expected=self.entity)

    def change_set(self):
        return services.delete_all_change_set(self.integration, self.record_type, self.actor)

    def confirmed(self) -> bool:
        return self.form.is_valid()

    def preview(self, change_set):
        return self.render_page(self.form, status=422)

    def back_url(self) -> str:
        return self.list_url()

    def job_description(self, size: int) -> str:
        return services.delete_all_description(self.integration, self.record_type, size)

    def render_page(self, form, status=200):
        kept = self.kept_counts[self.record_type]
        count, unlinked = kept.linked, kept.unlinked
        context = {
            **self.base_context(),
            "form": form,
            "count": count,
            # The Health page's forecast, for what this would leave behind.
            "forecast_after": creates_after(self.integration, self.record_type, count + unlinked),
            "list_url": self.list_url(),
            "delete_all_url": self.url("delete_all"),
        }
        return render(self.request, "references/delete_all.html", context, status=status)

    def started(self, job):
        messages.info(
            self.request,
            f"Deleting {job.total:,} {singular(self.record_type)} references in the background. "
            "You can leave this page; the Restore button appears here when it is done.",
        )
        return HttpResponseRedirect(self.list_url())

    def done(self, applied):
        count = applied.batch.row_count
        messages.success(self.request, f"Deleted {count} {singular(self.record_type)} references.")
        return HttpResponseRedirect(self.list_url())


class RestoreBatchView(ReferencesPageMixin, View):
    """Restore a batch. From the tenant's URL (batches/<id>/restore/: the References table's
    Undo and the delete-all banner) any batch of the tenant; from the URL under an integration
    and entity type (.../backfill/<id>/undo/: every other Undo) only a batch of those."""

    admin_required = True

    def resolve_objects(self) -> None:
        self.batch  # noqa: B018 (another tenant's batch is a 404, not a 403)

    @cached_property
    def batch(self) -> Batch:
        lookup = {"pk": self.url_id("batch_id")}
        if "integration_id" in self.kwargs:
            lookup.update(integration=self.integration, record_type=self.record_type)
        return self.get_object_or_404(
            Batch.objects.select_related("tenant", "integration__source", "integration__target"),
            **lookup,
        )

    def get(self, request, *args, **kwargs):
        """Without JavaScript (or from a bookmark): say what restoring does, then POST."""
        return render(request, "references/restore_confirm.html", {"batch": self.batch})

    def post(self, request, *args, **kwargs):
        batch = self.batch
        deleted_references = batch.kind in REFERENCE_DELETES
        if services.start_restore_job(batch, self.actor) is not None:
            messages.info(
                request,
                f"Restoring {batch.row_count:,} references in the background. "
                "You can leave this page."
                if deleted_references
                else f"Undoing {batch.description} in the background ({batch.row_count:,} "
                "rows). You can leave this page.",
            )
            if deleted_references:
                return self.back_to_tab(full_page=True)
            return HttpResponseRedirect(self.import_url())
        try:
            count = services.restore_batch(batch, self.actor)
        except DomainError as error:
            messages.error(request, refusal_message(request, error))
        else:
            messages.success(
                request,
                f"Restored {count} reference{'s' if count != 1 else ''}."
                if deleted_references
                else f"Undone: {batch.description}.",
            )
        if deleted_references:
            return self.back_to_tab()
        return HttpResponseRedirect(self.next_url() or self.import_url())

    def next_url(self) -> str:
        target = self.request.POST.get("next", "")
        return target if url_has_allowed_host_and_scheme(target, {self.request.get_host()}) else ""

    def import_url(self) -> str:
        """Where an undo returns without a `next`: the import page of the batch's tab."""
        tab = self.tab_kwargs()
        if tab is None:
            return reverse("tenant-home", args=[self.tenant.slug])
        return reverse("references:import", kwargs=tab)

    def tab_kwargs(self) -> dict | None:
        """The URL kwargs of the batch's References tab; None for a batch of no tab."""
        entity = slug_of(self.batch.record_type)
        if self.batch.integration_id is None or entity is None:
            return None
        return {
            "tenant_slug": self.tenant.slug,
            "integration_id": self.batch.integration_id,
            "entity": entity,
        }

    def back_to_tab(self, *, full_page: bool = False):
        """The batch's tab: the table in place when the Undo came from it (htmx), else the
        page; the tenant home for a batch of no tab."""
        request, tab = self.request, self.tab_kwargs()
        if tab is None:
            return HttpResponseRedirect(reverse("tenant-home", args=[self.tenant.slug]))
        list_url = reverse("references:list", kwargs=tab)
        if request.htmx and full_page:
            return HttpResponseClientRedirect(list_url)
        if request.htmx and request.POST.get("tab") == tab["entity"]:
            # The table of the batch's tab, as its page renders it. The tenant's URL names
            # no tab: take the batch's (the integration and counts are loaded from it).
            self.kwargs.update(tab)
            return self.render_table()
        if request.htmx:
            return reswap(render(request, "partials/messages.html", {"oob": True}), "none")
        return HttpResponseRedirect(list_url)

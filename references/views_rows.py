"""The References page's row actions: add, edit, delete one reference, its history and
revert. Each answers htmx with the row group (or the table) it changed, plus toasts and the
counts out of band; without htmx it redirects back to the table.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.views import View
from django_htmx.http import reswap, retarget

from common.errors import DomainError
from common.numbers import parse_number
from records.errors import StaleEdit
from records.models import AuditEntry
from records.queries import record_history
from records.versioning import reference_snapshot

from . import services
from .forms import EditReferenceForm, ReferenceForm
from .views_apply import refusal_message, toast_html
from .views_table import ReferencesPageMixin

HISTORY_LIMIT = 25


class AddReferenceView(ReferencesPageMixin, View):
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
                return reswap(retarget(response, "#ref-table"), "outerHTML")
        return self.render_form(form, status=422)


class EditReferenceView(ReferencesPageMixin, View):
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


class DeleteReferenceView(ReferencesPageMixin, View):
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
            messages.error(request, refusal_message(request, error))
            if not request.htmx:
                return HttpResponseRedirect(self.list_url())
            return self.render_group(
                "references/partials/row_group.html", record, with_toasts=True, status=200
            )
        messages.success(
            request,
            toast_html(
                "references/partials/applied_message.html",
                {"batch": batch, "in_table": True},
                request,
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


class HistoryView(ReferencesPageMixin, View):
    """A reference's audit trail, under its row, with "Revert to this" on past values."""

    def get(self, request, *args, **kwargs):
        return self.render_history(self.get_record())

    def render_history(self, record, *, status=200, error=None, counts=False):
        current = reference_snapshot(self.integration, record)
        # The same trail as the record page: its own entries and the bulk batches (delete
        # all, import) that took or gave one of its ids.
        entries = list(record_history(record)[:HISTORY_LIMIT])
        offered = []
        for entry in entries:
            url = self.url("revert", local_id=record.local_id, entry_id=entry.pk)
            entry.revert_url = (
                url if revertable(entry, entry.after, current, self.integration) else ""
            )
            entry.revert_before_url = ""
            if entry.revert_url:
                offered.append(entry.after)
        # The values before a change are known too, and are the only way back where no entry
        # has them as its "after": the synced values before the first edit (a sync leaves no
        # entry of the reference), the link before a delete. Offered where no other entry
        # offers the same values, the oldest such change first.
        for entry in reversed(entries):
            if revertable(entry, entry.before, current, self.integration) and not any(
                same_reference(entry.before, values) for values in offered
            ):
                url = self.url("revert", local_id=record.local_id, entry_id=entry.pk)
                entry.revert_before_url = f"{url}?to=before"
                entry.revert_before_label = (
                    "Put back" if entry.action == AuditEntry.Action.DELETE else "Revert to before"
                )
                offered.append(entry.before)
        template = (
            "references/partials/row_history.html"
            if self.request.htmx
            else "references/reference_history.html"
        )
        extra = {**self.counts_context(), "with_counts": True} if counts else {}
        return self.render_group(
            template,
            record,
            status=status,
            entries=entries,
            version=record.version,
            history_error=error,
            with_toasts=True,
            list_url=self.list_url(),
            **extra,
        )


class RevertView(HistoryView):
    """POST reverts; a GET (a reload, a bookmark) shows the history it came from."""

    def get(self, request, *args, **kwargs):
        record = self.get_record()
        self.get_object_or_404(AuditEntry, pk=self.url_id("entry_id"))  # another tenant's: 404
        return self.render_history(record)

    def post(self, request, *args, **kwargs):
        record = self.get_record()
        entry = self.get_object_or_404(AuditEntry, pk=self.url_id("entry_id"), record=record)
        current = reference_snapshot(self.integration, record)
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
        # A revert can link or unlink the row: the tabs' and the filter's counts come along.
        return self.render_history(record, counts=True)


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


def _int(value, default: int) -> int:
    number = parse_number(value)
    return default if number is None else number

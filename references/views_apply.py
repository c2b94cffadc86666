"""One preview -> apply flow for every change set a person confirms (after NetBox's
BulkImportView): the first POST shows the engine's plan of it (nothing is written); the POST
with `confirm` applies it in the request when it is small, or starts a job when it is large.
Its size is the change set's `size` (records.changes), so "large" means the same everywhere.

A view declares what differs:

    class ReconcileFixView(HealthMixin, PreviewApplyView):
        job_kind = "reconcile_apply"
        def change_set(self): ...           # built from the request (scoped, re-derived)
        def back_url(self): ...             # where it returns
        def job_params(self): ...           # what the job needs to build it again
        def job_description(self, size): ...
        def preview_context(self): ...      # the preview's labels and hidden fields

and, where its result needs more than a toast with Undo, overrides `started(job)` or `done`.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.generic import TemplateView

from common.errors import DomainError
from records import changes, jobs
from records.errors import BulkChangeRunning

from .mixins import IntegrationMixin

PREVIEW_LINES = 200


def toast_html(template: str, context: dict, request) -> str:
    """A message rendered from a template (so escaped), kept as HTML for the toast (its Undo
    form): str.strip would drop the safe mark."""
    return mark_safe(render_to_string(template, context, request).strip())


def refusal_message(request, error: DomainError) -> str:
    """A refused change as a toast: its message, with a link to the progress of the bulk
    change that refused it, if any."""
    job = error.job if isinstance(error, BulkChangeRunning) else None
    if job is None:
        return error.message
    url = reverse("records:job", args=[request.tenant.slug, job.pk])
    return format_html('{} <a href="{}">See its progress</a>', error.message, url)


def describe(plan, line) -> dict:
    """One planned change as a person reads it: what it does, and why (or why not)."""
    what = changes.intent(plan, line)
    return {"what": what, "outcome": line.outcome, "why": line.reason or line.change.note}


def first_refusal(plan) -> str:
    rejected = plan.of(changes.REJECTED)
    return rejected[0].reason if rejected else "the rows no longer need it."


class PreviewApplyView(IntegrationMixin, TemplateView):
    """Preview a change set, then apply it (small) or run it as a job (large)."""

    admin_required = True
    template_name = "references/preview.html"
    job_kind: str

    # --- what a view declares ---

    def change_set(self):
        raise NotImplementedError

    def back_url(self) -> str:
        raise NotImplementedError

    def job_params(self) -> dict:
        return {}

    def job_description(self, size: int) -> str:
        raise NotImplementedError

    def preview_context(self) -> dict:
        """The preview's labels (`action_label`, `finding_label`) and `confirm_fields`."""
        return {}

    # --- the flow ---

    def get(self, request, *args, **kwargs):
        return redirect(self.back_url())

    def post(self, request, *args, **kwargs):
        try:
            change_set = self.change_set()
            if not self.confirmed():
                return self.preview(change_set)
            size = change_set.size
            if jobs.runs_as_job(size):
                return self.started(self.start_job(size))
            applied = self.apply(change_set)
        except DomainError as error:
            messages.error(request, refusal_message(request, error))
            return redirect(self.back_url())
        return self.done(applied)

    def confirmed(self) -> bool:
        return self.request.POST.get("confirm") == "1"

    def preview(self, change_set):
        plan = changes.plan(change_set)
        return self.render_to_response(
            self.get_context_data(
                plan=plan,
                counts=plan.counts,
                described=self.describe_lines(plan, plan.lines[:PREVIEW_LINES]),
                more=max(0, len(plan.lines) - PREVIEW_LINES),
                runs_as_job=jobs.runs_as_job(change_set.size),
                fix_url=self.request.path,
                back_url=self.back_url(),
                **self.preview_context(),
            )
        )

    def describe_lines(self, plan, lines) -> list[dict]:
        """The preview's first lines in words; a view may name their records."""
        return [describe(plan, line) for line in lines]

    def start_job(self, size: int):
        return jobs.start_job(
            self.job_kind,
            tenant=self.tenant,
            actor=self.actor,
            integration=self.integration,
            record_type=self.record_type,
            params=self.job_params(),
            total=size,
            description=self.job_description(size),
        )

    def started(self, job):
        """A job was started: show its progress."""
        return redirect("records:job", self.tenant.slug, job.pk)

    def apply(self, change_set) -> changes.Applied:
        return changes.apply(change_set)

    def done(self, applied: changes.Applied):
        """Applied in the request: a toast with what it did and its Undo."""
        if applied.batch is None:
            messages.error(self.request, "Nothing was changed: " + self.refused(applied.plan))
        else:
            messages.success(self.request, self.applied_message(applied))
        return redirect(self.back_url())

    def refused(self, plan) -> str:
        """Why nothing was written."""
        return first_refusal(plan)

    def applied_message(self, applied: changes.Applied) -> str:
        rejected = applied.counts[changes.REJECTED]
        context = {
            "batch": applied.batch,
            "rejected": rejected,
            "reason": first_refusal(applied.plan) if rejected else "",
            "next": self.back_url(),
        }
        # Rendered (so escaped) by the template; the toast shows it as HTML (its Undo form).
        return toast_html("references/partials/applied_message.html", context, self.request)

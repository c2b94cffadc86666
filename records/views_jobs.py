"""The Jobs pages: every job of the tenant, and one job whose status htmx polls."""

from django.contrib import messages
from django.shortcuts import render
from django.views import View
from django_htmx.http import HttpResponseClientRefresh

from common.lists import page_number_of
from common.paging import page_of
from integrations.tenancy import TenantMixin

from .models import Job
from .views import references_url

JOBS_PER_PAGE = 50


def job_finished_message(job: Job) -> str:
    if job.state == Job.State.FAILED:
        return f"{job.description} failed: {job.error}"
    counts = job.result or {}
    parts = [f"{value:,} {name}" for name, value in counts.items() if value]
    return f"{job.description}: done" + (f" ({', '.join(parts)})." if parts else ".")


class JobListView(TenantMixin, View):
    """Every job of the tenant: who started what, its state and progress, newest first."""

    def get(self, request, *args, **kwargs):
        jobs = self.scoped(Job).select_related("integration__source", "integration__target")
        page = page_of(jobs, page_number_of(request.GET.get("page")), JOBS_PER_PAGE)
        context = {
            "jobs": page.rows,
            "page_number": page.number,
            "has_next": page.has_next,
            "any_active": any(job.is_active for job in page.rows),
        }
        template = "records/partials/job_table.html" if request.htmx else "records/job_list.html"
        response = render(request, template, context)
        return response


class JobDetailView(TenantMixin, View):
    """One job; htmx polls its status partial every second while it runs.

    A page that started the job embeds the partial with `refresh=1`: when the job ends, that
    page reloads (HX-Refresh) to show the result, with the outcome as a toast.
    """

    def get(self, request, *args, **kwargs):
        job = self.get_object_or_404(
            Job.objects.select_related("integration__source", "integration__target", "batch"),
            pk=self.url_id("job_id"),
        )
        refresh = request.GET.get("refresh") == "1"
        if request.htmx and refresh and not job.is_active:
            level = messages.ERROR if job.state == Job.State.FAILED else messages.SUCCESS
            messages.add_message(request, level, job_finished_message(job))
            return HttpResponseClientRefresh()
        if request.htmx:
            response = render(
                request, "records/partials/job_status.html", {"job": job, "refresh": refresh}
            )
        else:
            references = (
                references_url(request.tenant.slug, job.integration, job.record_type)
                if job.integration
                else ""
            )
            context = {"job": job, "references_url": references}
            response = render(request, "records/job_detail.html", context)
        return response

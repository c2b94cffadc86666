"""The floor: bare Django views that run the same rows query as the References page 1 (and
the same record queries as the record page) and render a minimal template, with no
middleware, no session, no log-in, no base template (bench/floor_settings.py).

    GET /floor/<integration_id>/<record_type>/?q=...&linked=...   50 rows of the References page
    GET /floor/<tenant_id>/records/<local_id>/                  one record

The rows are `references.queries.reference_rows` with the filter values the page's
ReferenceFilterSet would pass, in the same order (newest first, keyset order), 51 fetched for
50 shown as `references.queries.page_of` does. Tenant and integration are one query, as the page's
membership and integration queries are on the app side.
"""

from django.http import Http404, HttpResponse
from django.template.loader import get_template
from django.urls import path

from common.paging import DEFAULT_PAGE_SIZE
from integrations.models import Integration, Tenant
from records.models import CustomData, Record, RemoteId
from records.queries import record_history
from references.filters import reference_rows
from references.queries import DEFAULT_SORT

LINKED = {"all", "linked", "unlinked", "lost", "never"}


def reference_page(request, integration_id: int, record_type: str):
    integration = (
        Integration.objects.select_related("tenant", "source", "target")
        .filter(pk=integration_id)
        .first()
    )
    if integration is None:
        raise Http404
    q = request.GET.get("q", "").strip()
    linked = request.GET.get("linked", "all")
    rows = reference_rows(
        integration,
        record_type,
        q=q,
        linked=linked if linked in LINKED else "all",
        sort=DEFAULT_SORT,
    )
    fetched = list(rows[: DEFAULT_PAGE_SIZE + 1])
    context = {"integration": integration, "rows": fetched[:DEFAULT_PAGE_SIZE], "q": q}
    return HttpResponse(get_template("bench/floor_page.html").render(context))


def record_page(request, tenant_id: int, local_id: str):
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    record = (
        Record.objects.for_tenant(tenant)
        .select_related("source_connection")
        .filter(local_id=local_id)
        .first()
        if tenant
        else None
    )
    if record is None:
        raise Http404
    context = {
        "record": record,
        "remote_ids": list(
            RemoteId.objects.for_tenant(tenant)
            .filter(record=record)
            .select_related("connection__connector")
            .order_by("connection__name", "connection_id")
        ),
        "custom_data": list(
            CustomData.objects.for_tenant(tenant)
            .filter(record=record)
            .select_related("connection__connector")
        ),
        "history": list(record_history(record)[:101])[:100],
    }
    return HttpResponse(get_template("bench/floor_record.html").render(context))


urlpatterns = [
    path("floor/<int:integration_id>/<slug:record_type>/", reference_page),
    path("floor/<int:tenant_id>/records/<str:local_id>/", record_page),
]

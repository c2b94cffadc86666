"""Template tags of the References pages: the Undo button of a toast or a result."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.urls import reverse

from common.entities import slug_of

register = template.Library()


def undo_context(request, batch, label: str = "Undo", *, next_url: str = "", in_table=False):
    """What the Undo button shows and posts. In the References table (`in_table`) it swaps the
    table in place; elsewhere it returns to `next_url` (default: this request's page)."""
    if in_table:
        url = reverse(
            "references:restore", kwargs={"tenant_slug": request.tenant.slug, "batch_id": batch.pk}
        )
    else:
        url = reverse(
            "references:backfill-undo",
            kwargs={
                "tenant_slug": request.tenant.slug,
                "integration_id": batch.integration_id,
                "entity": slug_of(batch.record_type),
                "batch_id": batch.pk,
            },
        )
        next_url = next_url or request.get_full_path()
    return {"url": url, "label": label, "next": next_url, "in_table": in_table}


@register.inclusion_tag("references/partials/undo_form.html", takes_context=True)
def undo_button(context, batch, label: str = "Undo", next_url: str = "", in_table=False):
    """{% undo_button batch next_url=url %}: the Undo button that posts to the restore view."""
    return undo_context(context["request"], batch, label, next_url=next_url, in_table=in_table)


@register.inclusion_tag("references/partials/retry_sync_button.html", takes_context=True)
def retry_sync_button(context, batch, next_url: str = ""):
    """{% retry_sync_button batch %}: Retry sync for the records `batch` changed (after a
    Reconcile or a Health fix), to its preview (records.views_retry); returns to `next_url`
    (default: this request's page)."""
    request = context["request"]
    url = reverse(
        "records:batch-retry-sync",
        kwargs={"tenant_slug": request.tenant.slug, "batch_id": batch.pk},
    )
    next_url = next_url or request.get_full_path()
    return {"url": f"{url}?{urlencode({'next': next_url})}", "count": batch.row_count}

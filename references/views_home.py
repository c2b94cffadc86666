"""The tenant home: each integration with its reference counts and Health, per entity type.

It lives with the References pages because that is what it summarises and links to; the
tenant picker before it (integrations.views.home) needs only memberships.
"""

from django.urls import reverse
from django.views.generic import TemplateView

from common.display_counts import Count
from common.entities import EntityType, slug_of
from integrations.models import Integration
from integrations.tenancy import TenantMixin
from records import counts

from .findings.incident import incidents
from .findings.summary import entity_health


class TenantHomeView(TenantMixin, TemplateView):
    template_name = "references/tenant_home.html"

    def get_context_data(self, **kwargs):
        # Each integration with its kept counts, in one query (as on the References page).
        integrations = list(
            counts.with_kept_counts(
                self.scoped(Integration).select_related("source__connector", "target__connector")
            )
        )
        rows = []
        for integration in integrations:
            integration.tenant = self.tenant  # the membership's, already loaded: no query
            entities = []
            kept = counts.preloaded_counts(integration) or counts.kept_counts(integration)
            for record_type in integration.synced_entity_types:
                slug = slug_of(record_type)
                url = reverse(
                    "references:list",
                    kwargs={
                        "tenant_slug": self.tenant.slug,
                        "integration_id": integration.pk,
                        "entity": slug,
                    },
                )
                health_url = reverse(
                    "references:health",
                    kwargs={
                        "tenant_slug": self.tenant.slug,
                        "integration_id": integration.pk,
                        "entity": slug,
                    },
                )
                entities.append(
                    {
                        "entity": slug,
                        "label": EntityType(record_type).label,
                        # Kept by the change engine, as on the References tabs: exact.
                        "references": Count(kept[record_type].linked),
                        "health": entity_health(integration, record_type, kept[record_type]),
                        "url": url,
                        "health_url": health_url,
                    }
                )
            rows.append(
                {
                    "integration": integration,
                    "entities": entities,
                    "health_url": reverse(
                        "references:health-overview",
                        kwargs={"tenant_slug": self.tenant.slug, "integration_id": integration.pk},
                    ),
                }
            )
        return super().get_context_data(
            tenant=self.tenant,
            integrations=integrations,
            rows=rows,
            incidents=incidents(self.tenant, integrations),
            **kwargs,
        )

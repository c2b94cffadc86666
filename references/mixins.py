"""The one view stack of the references app.

Every References, Backfill and Health view inherits IntegrationMixin. TenantMixin resolves the
tenant, then calls `resolve`: here the integration of the URL (and its entity type, when the URL
names one), each a 404 when it is not the tenant's or not synced, and only then checks the role
(`admin_required`). So an outsider and a support user alike learn nothing from a 403.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

from django.db.models import Exists, OuterRef
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from common.entities import EntityType, record_type_of
from common.numbers import parse_number
from common.prepared import PreparedQuery
from integrations.models import Integration, Tenant
from integrations.tenancy import TenantMixin
from records import counts
from records.audit import Actor
from records.jobs import SHOWN_FOR, has_recent_jobs

from .queries import BANNER_HOURS, restorable_delete_alls


def _integrations(tenant_id: int):
    return counts.with_kept_counts(
        Integration.objects.for_tenant(Tenant(pk=tenant_id)).select_related(
            "source__connector", "target__connector"
        )
    )


# One query brings what every tab shows besides its rows: the connections, the kept counts,
# and whether the tab has jobs or a restorable delete-all to ask for at all. Compiled once per
# process (common.prepared): compiling it cost several times what running it does.
integration_alone = PreparedQuery(
    lambda tenant_id, integration_id: _integrations(tenant_id).filter(pk=integration_id)
)


def _integration_with_its_tab(tenant_id, integration_id, record_type, jobs_since, banner_since):
    tenant = Tenant(pk=tenant_id)
    return (
        _integrations(tenant_id)
        .filter(pk=integration_id)
        .annotate(
            has_recent_jobs=has_recent_jobs(tenant, record_type, jobs_since),
            has_restorable_delete_all=Exists(
                restorable_delete_alls(tenant, OuterRef("pk"), record_type, banner_since)
            ),
        )
    )


integration_with_its_tab = PreparedQuery(_integration_with_its_tab)


def _int(value) -> int:
    # The URL pattern admits digits only; a number too big for the database is no integration.
    number = parse_number(str(value))  # an int when the kwargs came from a batch, not a URL
    if number is None:
        raise Http404("No such integration.")
    return number


class IntegrationMixin(TenantMixin):
    """The integration and entity type of the URL, scoped to the tenant (else 404)."""

    def resolve(self) -> None:
        super().resolve()
        if "integration_id" in self.kwargs:
            self.integration  # noqa: B018 (looked up now: a 404 comes before the role check)
            if "entity" in self.kwargs:
                self.record_type  # noqa: B018

    @cached_property
    def integration(self):
        record_type = record_type_of(self.kwargs.get("entity", ""))
        if record_type is not None:
            now = timezone.now()
            integration = integration_with_its_tab.first(
                tenant_id=self.tenant.pk,
                integration_id=_int(self.kwargs["integration_id"]),
                record_type=record_type,
                jobs_since=now - SHOWN_FOR,
                banner_since=now - timedelta(hours=BANNER_HOURS),
            )
        else:
            integration = integration_alone.first(
                tenant_id=self.tenant.pk, integration_id=_int(self.kwargs["integration_id"])
            )
        if integration is None:
            raise Http404("No such integration.")
        integration.tenant = self.tenant  # the membership's, already loaded: no query
        return integration

    def loaded_with_integration(self, flag: str) -> bool:
        """A flag the integration's query brought (`has_recent_jobs`...). True when unsure:
        after a change in this request (any unsafe method) it must be asked afresh."""
        if self.request.method not in ("GET", "HEAD"):
            return True
        return getattr(self.integration, flag, True)

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

    @cached_property
    def entity(self) -> str:
        return self.kwargs["entity"]

    @cached_property
    def record_type(self) -> str:
        record_type = record_type_of(self.entity)
        if record_type is None or record_type not in self.integration.synced_entity_types:
            raise Http404("This integration does not sync that entity type.")
        return record_type

    @property
    def actor(self) -> Actor:
        return Actor.for_user(self.request.user)

    @property
    def is_admin(self) -> bool:
        return self.request.membership.is_admin

    def url(self, name: str, entity: str | None = None, **kwargs) -> str:
        """A references URL of this integration and entity type (or `entity`)."""
        return reverse(
            f"references:{name}",
            kwargs={
                "tenant_slug": self.tenant.slug,
                "integration_id": self.integration.pk,
                "entity": entity or self.entity,
                **kwargs,
            },
        )

    def get_context_data(self, **kwargs):
        """What every page of an integration shows in its header (TemplateView pages)."""
        kwargs.update(integration=self.integration, is_admin=self.is_admin)
        if "entity" in self.kwargs:
            kwargs.update(
                record_type=self.record_type,
                entity=self.entity,
                entity_label=EntityType(self.record_type).label,
                references_url=self.url("list"),
            )
        return super().get_context_data(**kwargs)

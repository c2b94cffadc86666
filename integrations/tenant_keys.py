"""Keys of tenant-owned tables: every row is addressed by (tenant_id, id), every join between two
tenant-owned tables also matches tenant_id.

On one PostgreSQL that costs nothing and keeps a query inside one tenant's rows; on Citus
(common/citus) the tenant-owned tables are distributed by tenant_id, and a statement that names
the tenant of every table it touches runs on the one shard that holds it. A join or an UPDATE
that does not would have to visit every shard (or is refused). The database keys themselves,
PRIMARY KEY (tenant_id, id) and the composite foreign keys, are made by
common/citus/keys.py from the migrations.
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.db import models
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseManyToOneDescriptor,
)
from django.db.models.lookups import Exact
from django.db.models.sql.where import AND, WhereNode
from django.utils.functional import cached_property

_deleting_within: ContextVar[int | None] = ContextVar("deleting_within", default=None)


@contextlib.contextmanager
def deleting_within(tenant_id: int | None) -> Iterator[None]:
    """While one tenant's rows are deleted: Django's deletion (the cascade's reads, DELETEs by
    id, SET NULL updates) builds statements by id alone, which the Citus backend
    (config/citus/compiler.py) gives this tenant too, so that each stays on the tenant's shard.
    None (a delete not scoped to one tenant) changes nothing."""
    token = _deleting_within.set(tenant_id)
    try:
        yield
    finally:
        _deleting_within.reset(token)


def deletion_tenant() -> int | None:
    """The tenant whose rows are being deleted (deleting_within), if any."""
    return _deleting_within.get()


def _scoped(queryset, tenant_id):
    scope = getattr(queryset, "scoped_to_tenant", None)
    return scope(tenant_id) if scope else queryset


def _in_their_tenants(queryset, instances):
    return queryset.filter(tenant_id__in={instance.tenant_id for instance in instances})


class _ForwardDescriptor(ForwardManyToOneDescriptor):
    """`prefetch_related("record")` reads the records WHERE tenant_id IN (…) AND id IN (…)."""

    def get_prefetch_querysets(self, instances, querysets=None):
        if not querysets:
            querysets = [_in_their_tenants(self.get_queryset(), instances)]
        return super().get_prefetch_querysets(instances, querysets)


class _ReverseDescriptor(ReverseManyToOneDescriptor):
    """`upload.lines`, `record.remote_ids`: the related rows WHERE tenant_id = … AND
    upload_id = …, and their prefetch likewise."""

    @cached_property
    def related_manager_cls(self):
        manager_class = super().related_manager_cls

        class TenantRelatedManager(manager_class):
            def __init__(self, instance):
                super().__init__(instance)
                self.core_filters = {**self.core_filters, "tenant_id": instance.tenant_id}

            def get_queryset(self):
                return _scoped(super().get_queryset(), self.instance.tenant_id)

            def get_prefetch_querysets(self, instances, querysets=None):
                if not querysets:
                    querysets = [_in_their_tenants(super().get_queryset(), instances)]
                return super().get_prefetch_querysets(instances, querysets)

        return TenantRelatedManager


class TenantForeignKey(models.ForeignKey):
    """A foreign key from one tenant-owned model to another: joins carry `tenant_id = tenant_id`
    and `instance.<field>` looks the target up with the instance's tenant.

    Both models have a `tenant` field. In the database the key is (tenant_id, <field>_id) ->
    (tenant_id, id) on PostgreSQL (common/citus/keys.py); never alter such a field with a
    plain AlterField on PostgreSQL, which would try to recreate a key on `id` alone.
    """

    forward_related_accessor_class = _ForwardDescriptor
    related_accessor_class = _ReverseDescriptor

    def get_extra_restriction(self, alias, related_alias):
        # alias: the target table's alias; related_alias: ours. Django passes None for one of
        # them when it pushes a join down into a subquery, where the subquery's own tenant
        # filter (the querysets are tenant-scoped) keeps it on one shard.
        if alias is None or related_alias is None:
            return None
        target_tenant = self.related_model._meta.get_field("tenant")
        own_tenant = self.model._meta.get_field("tenant")
        return WhereNode(
            [Exact(target_tenant.get_col(alias), own_tenant.get_col(related_alias))],
            connector=AND,
        )

    def get_extra_descriptor_filter(self, instance):
        # `remote_id.record` fetches WHERE tenant_id = … AND id = …: one shard, not all.
        return {"tenant_id": instance.tenant_id}


class TenantOwnedModel(models.Model):
    """A model whose rows belong to one tenant: `save()` and `refresh_from_db()` address the row
    by (tenant_id, id), as every other statement does."""

    class Meta:
        abstract = True

    def _do_update(self, base_qs, using, pk_val, values, update_fields, forced_update):
        return super()._do_update(
            base_qs.filter(tenant_id=self.tenant_id),
            using,
            pk_val,
            values,
            update_fields,
            forced_update,
        )

    def delete(self, using=None, keep_parents=False):
        with deleting_within(self.tenant_id):
            return super().delete(using=using, keep_parents=keep_parents)

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        # Read from __dict__: a deferred tenant_id would otherwise call this method again.
        tenant_id = self.__dict__.get("tenant_id")
        if from_queryset is None and tenant_id is not None:
            from_queryset = type(self)._base_manager.db_manager(using).filter(tenant_id=tenant_id)
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)

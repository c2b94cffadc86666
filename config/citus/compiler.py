"""SQL compilers of the `citus://` backend: PostgreSQL's, plus the tenant in deletion statements.

Django's deletion addresses rows by id alone: the cascade reads `record_id IN (…)`, deletes
`WHERE id IN (…)` and sets NULL by id. On Citus each of those would visit every shard (and no
index serves `id` alone, the keys being (tenant_id, id)). While a tenant's rows are deleted
(integrations.tenant_keys.deleting_within: a tenant-owned instance's delete(), or a for_tenant()
queryset's), every statement about a tenant-owned table also says `tenant_id = <that tenant>`.
The rows are the same; only the number of shards visited changes.
"""

from django.db.backends.postgresql import compiler as postgresql
from django.db.models import Q

from integrations.tenant_keys import TenantOwnedModel, deletion_tenant


class _WithinTheDeletedTenant:
    def as_sql(self, *args, **kwargs):
        tenant_id = deletion_tenant()
        model = self.query.model
        if tenant_id is not None and model is not None and issubclass(model, TenantOwnedModel):
            self.query = self.query.clone()
            self.query.add_q(Q(tenant_id=tenant_id))
        return super().as_sql(*args, **kwargs)


class SQLCompiler(_WithinTheDeletedTenant, postgresql.SQLCompiler):
    pass


class SQLDeleteCompiler(_WithinTheDeletedTenant, postgresql.SQLDeleteCompiler):
    pass


class SQLUpdateCompiler(_WithinTheDeletedTenant, postgresql.SQLUpdateCompiler):
    pass


class SQLAggregateCompiler(_WithinTheDeletedTenant, postgresql.SQLAggregateCompiler):
    pass


SQLInsertCompiler = postgresql.SQLInsertCompiler  # an insert names its tenant already

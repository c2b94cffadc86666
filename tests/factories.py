import factory
from django.contrib.auth import get_user_model

from integrations.models import Connection, Connector, Integration, Membership, Reseller, Tenant
from records.models import CustomData, Record, ReferenceCount, RemoteId, writing

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password(PASSWORD)


class ResellerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reseller

    name = factory.Sequence(lambda n: f"Reseller {n}")


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    reseller = factory.SubFactory(ResellerFactory)
    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Membership.Role.SUPPORT


class ConnectorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connector
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"connector-{n}")
    name = factory.LazyAttribute(lambda connector: connector.code.title())
    category = Connector.Category.ECOMMERCE


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    tenant = factory.SubFactory(TenantFactory)
    connector = factory.SubFactory(ConnectorFactory)
    name = factory.Sequence(lambda n: f"Connection {n}")


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Integration

    tenant = factory.SubFactory(TenantFactory)
    source = factory.SubFactory(ConnectionFactory, tenant=factory.SelfAttribute("..tenant"))
    target = factory.SubFactory(ConnectionFactory, tenant=factory.SelfAttribute("..tenant"))
    name = factory.LazyAttribute(lambda i: f"{i.source.name} -> {i.target.name}")
    entity_types = factory.LazyFunction(lambda: ["article", "customer", "order", "stock"])


class RecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Record

    tenant = factory.SubFactory(TenantFactory)
    record_type = "order"
    last_modified_by = "system/tests"
    record_source = "system/tests"


class RemoteIdFactory(factory.django.DjangoModelFactory):
    """The world as a sync left it: written past the change engine, like bench/load.py."""

    class Meta:
        model = RemoteId

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with writing():
            row = super()._create(model_class, *args, **kwargs)
            # Written past the engine, so its kept counts are stale: they are counted again
            # when next read (as after bench/load.py's bulk load, which ends with a recount).
            ReferenceCount.objects.filter(tenant_id=row.tenant_id).delete()
            return row

    record = factory.SubFactory(RecordFactory)
    tenant = factory.SelfAttribute("record.tenant")
    connection = factory.SubFactory(ConnectionFactory, tenant=factory.SelfAttribute("..tenant"))
    record_type = factory.SelfAttribute("record.record_type")
    remote_id = factory.Sequence(lambda n: f"R{n:06d}")
    remote_ref = ""


class CustomDataFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomData

    record = factory.SubFactory(RecordFactory)
    tenant = factory.SelfAttribute("record.tenant")
    connection = None
    module_id = "x-support"
    key = factory.Sequence(lambda n: f"key{n}")
    type = "string"
    value = "hello"


def make_reference(integration, record_type="order", *, source_id, target_id=None, **refs):
    """A record that the integration's source knows as source_id (and target as target_id)."""
    record = RecordFactory(tenant=integration.tenant, record_type=record_type)
    RemoteIdFactory(
        record=record,
        connection=integration.source,
        remote_id=source_id,
        remote_ref=refs.get("source_ref", ""),
    )
    if target_id is not None:
        RemoteIdFactory(
            record=record,
            connection=integration.target,
            remote_id=target_id,
            remote_ref=refs.get("target_ref", ""),
        )
    return record

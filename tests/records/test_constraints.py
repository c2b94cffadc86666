"""The database itself refuses what the rules forbid, on SQLite and PostgreSQL alike."""

import pytest
from django.db import IntegrityError, transaction

from integrations.models import Integration
from records.models import CustomData, RemoteId
from tests.factories import (
    ConnectionFactory,
    CustomDataFactory,
    RecordFactory,
    RemoteIdFactory,
)

pytestmark = pytest.mark.django_db


def refused(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_remote_id_is_unique_per_connection_and_type(world):
    row = RemoteIdFactory(record__tenant=world.tenant, connection=world.shop, remote_id="5001")
    refused(
        lambda: RemoteIdFactory(
            record__tenant=world.tenant, connection=world.shop, remote_id="5001"
        )
    )
    # same id for another record type, or in another connection, is fine
    RemoteIdFactory(
        record__tenant=world.tenant,
        record__record_type="article",
        connection=world.shop,
        remote_id="5001",
    )
    RemoteIdFactory(record__tenant=world.tenant, connection=world.erp, remote_id="5001")
    assert RemoteId.objects.filter(remote_id=row.remote_id).count() == 3


def test_a_record_has_at_most_one_id_per_connection(world):
    row = RemoteIdFactory(record__tenant=world.tenant, connection=world.shop)
    refused(lambda: RemoteIdFactory(record=row.record, connection=world.shop))


@pytest.mark.parametrize("bad", ["", "a\tb", "line\nbreak", "nul\x01"])
def test_empty_or_control_character_ids_are_refused_by_the_database(world, bad):
    refused(lambda: RemoteIdFactory(record__tenant=world.tenant, remote_id=bad))


def test_custom_data_key_is_unique_also_without_connection(world):
    record = RecordFactory(tenant=world.tenant)
    CustomDataFactory(record=record, module_id="x-a", key="k")
    refused(lambda: CustomDataFactory(record=record, module_id="x-a", key="k"))
    CustomDataFactory(record=record, connection=world.shop, module_id="x-a", key="k")
    refused(
        lambda: CustomDataFactory(record=record, connection=world.shop, module_id="x-a", key="k")
    )
    assert CustomData.objects.filter(record=record).count() == 2


@pytest.mark.parametrize(("module_id", "key"), [("x|a", "k"), ("x-a", "k|b"), ("", "k")])
def test_custom_data_names_without_pipe(world, module_id, key):
    refused(lambda: CustomDataFactory(record__tenant=world.tenant, module_id=module_id, key=key))


def test_custom_data_type_must_be_known(world):
    refused(lambda: CustomDataFactory(record__tenant=world.tenant, type="float"))


def test_local_and_connection_ids_are_32_lowercase_hex_and_unique(world):
    record = RecordFactory(tenant=world.tenant)
    assert len(record.local_id) == 32 and record.local_id == record.local_id.lower()
    refused(lambda: RecordFactory(tenant=world.tenant, local_id=record.local_id))
    refused(lambda: RecordFactory(tenant=world.tenant, local_id="NOT-HEX"))
    assert len(world.shop.connection_id) == 32
    refused(lambda: ConnectionFactory(tenant=world.tenant, connection_id="ABC"))


def test_integration_source_and_target_differ(world):
    refused(
        lambda: Integration.objects.create(
            tenant=world.tenant, name="loop", source=world.shop, target=world.shop
        )
    )


def test_integration_connections_must_belong_to_its_tenant(world):
    from django.core.exceptions import ValidationError

    foreign = ConnectionFactory(tenant=world.other_tenant)
    with pytest.raises(ValidationError):
        Integration.objects.create(
            tenant=world.tenant, name="leak", source=world.shop, target=foreign
        )

"""Who created a record: the line on the record page, and the migration that linked records
created before to their connection."""

import importlib
import re

import pytest
from django.apps import apps

from records.audit import Actor
from records.models import Record
from records.services import create_record
from tests.factories import ConnectionFactory, RecordFactory
from tests.html import text_of

pytestmark = pytest.mark.django_db


def created_line(response) -> str:
    meta = re.search(r'<dl class="record-meta".*?</dl>', response.text, re.S).group(0)
    return re.search(r"Created (.*)", text_of(meta)).group(1)


@pytest.mark.parametrize(
    ("actor", "code", "shown"),
    [
        ("connection", "store-2", "by Shopify (connection, code: store-2)"),
        ("connection", "", "by Shopify (connection)"),
        ("user", "", "by user anna"),
        ("system", "", "by sync (system)"),
    ],
)
def test_the_record_page_says_who_created_the_record(support_client, world, actor, code, shown):
    who = {
        "connection": Actor.for_connection(world.shop),
        "user": Actor.for_user(world.admin),
        "system": Actor.system("sync"),
    }[actor]
    record = create_record(world.tenant, "order", who, source_code=code)

    response = support_client.get(f"/t/acme/records/{record.local_id}/")

    assert response.status_code == 200
    assert created_line(response).endswith(shown)
    assert f'title="{who}"' in response.text  # the {type}/{id} form on hover


def test_a_code_is_only_kept_for_records_a_connection_created(world):
    record = create_record(world.tenant, "order", Actor.system("sync"), source_code="store-2")
    assert record.source_code == ""
    assert record.source_connection is None


def test_the_migration_links_records_to_the_connection_of_their_tenant_that_created_them(world):
    migration = importlib.import_module("records.migrations.0009_record_source")
    theirs = ConnectionFactory(tenant=world.other_tenant)
    by_shop = RecordFactory(
        tenant=world.tenant, record_source=f"connection/{world.shop.connection_id}"
    )
    # Another tenant's connection id on this tenant's record names no connection of it.
    by_theirs = RecordFactory(
        tenant=world.tenant, record_source=f"connection/{theirs.connection_id}"
    )
    by_user = RecordFactory(tenant=world.tenant, record_source="user/anna")

    migration.link_records_to_the_connection_that_created_them(apps, None)

    linked = dict(Record.objects.values_list("pk", "source_connection_id"))
    assert linked == {by_shop.pk: world.shop.pk, by_theirs.pk: None, by_user.pk: None}

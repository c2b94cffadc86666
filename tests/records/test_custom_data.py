import pytest

from common.errors import InvalidValue, NotAllowed
from records.audit import Actor
from records.custom_data import (
    CustomDataInput,
    replace_custom_data,
    require_self_made_module,
    set_custom_data,
)
from records.models import AuditEntry, CustomData
from tests.factories import ConnectionFactory, CustomDataFactory, RecordFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def record(world):
    return RecordFactory(tenant=world.tenant)


def entry(module_id="x-support", key="note", type_="string", value="hi", connection=None):
    return CustomDataInput(module_id, key, type_, value, connection)


@pytest.mark.parametrize(
    ("type_", "given", "stored"),
    [
        ("string", "hello", "hello"),
        ("bool", "true", True),
        ("bool", False, False),
        ("integer", "42", 42),
        ("integer", -7, -7),
        ("decimal", "12.50", "12.50"),
        ("decimal", 0.1, "0.1"),
        ("json", '{"a": [1, 2]}', {"a": [1, 2]}),
        ("json", [1, "x"], [1, "x"]),
    ],
)
def test_values_are_parsed_as_their_type(world, record, type_, given, stored):
    (saved,) = set_custom_data(record, [entry(type_=type_, value=given)], world.actor)
    saved.refresh_from_db()
    assert saved.value == stored


@pytest.mark.parametrize(
    ("type_", "given", "message"),
    [
        ("integer", "4.2", "whole number"),
        ("integer", True, "whole number"),
        ("decimal", "abc", "decimal number"),
        ("decimal", "NaN", "decimal number"),
        ("bool", "maybe", "true or false"),
        ("json", "{not json", "valid JSON"),
        ("string", 12, "text"),
    ],
)
def test_values_that_do_not_parse_are_refused_on_the_value_field(
    world, record, type_, given, message
):
    with pytest.raises(InvalidValue, match=message) as error:
        set_custom_data(record, [entry(type_=type_, value=given)], world.actor)
    assert error.value.field == "value"
    assert not CustomData.objects.exists()


@pytest.mark.parametrize(
    ("module_id", "key", "field"), [("x|y", "k", "module_id"), ("x-a", "a|b", "key")]
)
def test_names_with_a_pipe_are_refused(world, record, module_id, key, field):
    with pytest.raises(InvalidValue) as error:
        set_custom_data(record, [entry(module_id=module_id, key=key)], world.actor)
    assert error.value.field == field


def test_unknown_type_is_refused(world, record):
    with pytest.raises(InvalidValue) as error:
        set_custom_data(record, [entry(type_="float", value="1")], world.actor)
    assert error.value.field == "type"


def test_set_is_an_upsert_with_audit_and_last_modified(world, record):
    set_custom_data(record, [entry(value="one")], world.actor)
    set_custom_data(record, [entry(value="two")], Actor("user", "erik"))

    item = CustomData.objects.get(record=record)
    assert item.value == "two"
    assert item.full_key == "|x-support|note"
    audit = list(AuditEntry.objects.filter(record=record).order_by("id"))
    assert [(a.before and a.before["value"], a.after["value"]) for a in audit] == [
        (None, "one"),
        ("one", "two"),
    ]
    record.refresh_from_db()
    assert record.last_modified_by == "user/erik"


def test_unchanged_value_writes_nothing(world, record):
    set_custom_data(record, [entry()], world.actor)
    version = type(record).objects.get(pk=record.pk).version
    set_custom_data(record, [entry()], world.actor)
    assert AuditEntry.objects.count() == 1
    assert type(record).objects.get(pk=record.pk).version == version


def test_connection_scoped_key_includes_connection_id(world, record):
    (saved,) = set_custom_data(record, [entry(connection=world.shop)], world.actor)
    assert saved.full_key == f"{world.shop.connection_id}|x-support|note"


def test_a_connection_may_not_write_another_connections_data(world, record):
    with pytest.raises(NotAllowed):
        set_custom_data(
            record,
            [entry(connection=world.erp)],
            Actor.for_connection(world.shop),
            writer=world.shop,
        )
    assert not CustomData.objects.exists()


def test_another_tenants_connection_is_refused(world, record):
    foreign = ConnectionFactory(tenant=world.other_tenant)
    with pytest.raises(InvalidValue):
        set_custom_data(record, [entry(connection=foreign)], world.actor)


def test_replace_keeps_entries_of_other_connections(world, record):
    mine = CustomDataFactory(record=record, connection=world.shop, key="old")
    unscoped = CustomDataFactory(record=record, key="gone")
    theirs = CustomDataFactory(record=record, connection=world.erp, key="theirs")

    kept = replace_custom_data(
        record,
        [entry(key="new", connection=world.shop)],
        Actor.for_connection(world.shop),
        writer=world.shop,
    )

    assert kept == [theirs]
    keys = set(CustomData.objects.filter(record=record).values_list("key", flat=True))
    assert keys == {"new", "theirs"}
    assert not CustomData.objects.filter(pk__in=[mine.pk, unscoped.pk]).exists()


def test_new_modules_made_by_people_must_start_with_x(world, record):
    with pytest.raises(InvalidValue, match="must start with x-"):
        require_self_made_module(world.tenant, "support")
    require_self_made_module(world.tenant, "x-support")
    CustomDataFactory(record=record, module_id="fortnox-invoices")
    require_self_made_module(world.tenant, "fortnox-invoices")  # exists: owned by a connector

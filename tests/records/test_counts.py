"""The counts the change engine keeps (records.counts) equal a full count after every kind of
write, on SQLite and PostgreSQL, and `manage.py recount` proves and repairs them."""

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import close_old_connections, connection

from records import counts
from records.audit import Actor
from records.models import ReferenceCount, writing
from records.services import create_record_with_remote_id, update_record
from references.findings import finding_named
from references.findings.lost import lost_rows
from references.imports import apply_import
from references.services import (
    ReferenceInput,
    add_reference,
    count_references,
    count_unlinked,
    delete_all_references,
    delete_reference,
    edit_reference,
    restore_batch,
)
from tests.factories import ConnectionFactory, IntegrationFactory, make_reference

pytestmark = pytest.mark.django_db


def full_count(integration, record_type="order") -> counts.Counts:
    """Counted the slow way, with the queries the pages used before counts were kept."""
    return counts.Counts(
        linked=count_references(integration, record_type),
        unlinked=count_unlinked(integration, record_type),
        lost=lost_rows(integration, record_type).count(),
    )


def kept(integration, record_type="order") -> counts.Counts:
    row = ReferenceCount.objects.get(integration=integration, record_type=record_type)
    return counts.Counts(row.linked, row.unlinked, row.lost)


def add(world, source_id, target_id):
    return add_reference(
        world.integration, "order", ReferenceInput(source_id, target_id), world.actor
    )


def test_every_kind_of_write_keeps_the_counts_exact(world):
    integration = world.integration
    for number in range(6):
        make_reference(integration, source_id=f"S{number}", target_id=f"T{number}")
    make_reference(integration, source_id="U1")  # unlinked, never linked
    steps = []

    def check(step):
        steps.append(step)
        assert kept(integration) == full_count(integration), step

    assert counts.counts_of(integration, "order") == full_count(integration)  # first read
    check("counted on first read")

    record = add(world, "S10", "T10")
    check("add a new reference")
    add(world, "U1", "T-U1")
    check("link a known unlinked source")
    record = edit_reference(
        integration, record, ReferenceInput("S10", "T11"), world.actor, version=record.version
    )
    check("edit the target id")
    batch = delete_reference(integration, record, world.actor)
    assert kept(integration).lost == 1
    check("delete: one lost link")
    restore_batch(batch, world.actor)
    check("undo the delete")

    everything = delete_all_references(integration, "order", world.actor)
    assert kept(integration).linked == 0 and kept(integration).lost == 8
    check("delete all")
    restore_batch(everything, world.actor)
    check("restore the delete all")

    apply_import(integration, "order", "source_id,target_id\nS20,T20\nS0,T0-NEW\n", world.actor)
    check("import: one new, one relinked")

    shop = Actor.for_connection(world.shop)
    synced = create_record_with_remote_id(
        world.tenant, "order", world.shop, shop, remote_id="S30", data={}
    )
    check("the API (a sync) creates an unlinked source record")
    update_record(
        synced,
        world.erp,
        Actor.for_connection(world.erp),
        data={},
        remote_id="T30",
        remote_ref="",
        custom_data={},
    )
    check("the target's API gives it its id: linked")

    victim = make_reference(integration, source_id="S40", target_id="T40")
    counts.recount(integration, "order")
    lost_batch = delete_reference(integration, victim, world.actor)
    lost = finding_named(integration, "order", "lost")
    rows = list(lost.rows().filter(record=victim))
    relink = lost.fix("relink")
    lost.apply(relink, lost.change_set(relink, rows, world.actor), rows)
    check("health: put back a lost link")
    assert lost_batch.pk and kept(integration).lost == full_count(integration).lost


def test_another_integration_sharing_the_target_is_kept_too(world):
    outlet = ConnectionFactory(tenant=world.tenant, name="Outlet")
    other = IntegrationFactory(tenant=world.tenant, source=outlet, target=world.erp)
    record = add(world, "S1", "T1")
    with writing():
        record.remote_ids.create(
            tenant=world.tenant, connection=outlet, record_type="order", remote_id="O1"
        )
    counts.recount(other, "order")
    assert kept(other) == counts.Counts(linked=1, unlinked=0, lost=0)

    delete_all_references(world.integration, "order", world.actor)

    assert kept(other) == full_count(other) == counts.Counts(linked=0, unlinked=1, lost=1)


def test_changing_an_integration_drops_its_counts_until_read(world):
    make_reference(world.integration, source_id="S1", target_id="T1")
    counts.counts_of(world.integration, "order")
    assert ReferenceCount.objects.filter(integration=world.integration).exists()

    world.integration.target = ConnectionFactory(tenant=world.tenant, name="Visma")
    world.integration.save()

    assert not ReferenceCount.objects.filter(integration=world.integration).exists()
    assert counts.counts_of(world.integration, "order") == counts.Counts(0, 1, 0)


def test_recount_reports_and_repairs_a_count_that_drifted(world):
    make_reference(world.integration, source_id="S1", target_id="T1")
    counts.counts_of(world.integration, "order")
    with writing():
        ReferenceCount.objects.filter(integration=world.integration, record_type="order").update(
            linked=99
        )
    out = StringIO()

    with pytest.raises(SystemExit):
        call_command("recount", "--check", stdout=out)

    assert "was 99 linked, 0 unlinked, 0 lost; now 1 linked, 0 unlinked, 0 lost" in out.getvalue()
    assert kept(world.integration).linked == 1
    out = StringIO()
    call_command("recount", "--check", stdout=out)  # nothing differs now: no exit
    assert "0 kept count(s) differed" in out.getvalue()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_adds_lose_no_increment(world):
    counts.counts_of(world.integration, "order")
    errors = []

    def adder(first):
        try:
            for number in range(first, first + 10):
                add(world, f"S{number}", f"T{number}")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=adder, args=(start,)) for start in (0, 100, 200, 300)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert kept(world.integration) == full_count(world.integration) == counts.Counts(40, 0, 0)


def test_restore_of_a_delete_all_after_sources_went_away_keeps_exact_counts(world):
    """The restore derives its counts from its batch: a record whose source id was removed
    since the delete-all comes back linked to nothing on this tab, and is not counted."""
    integration = world.integration
    for number in range(5):
        make_reference(integration, source_id=f"S{number}", target_id=f"T{number}")
    make_reference(integration, source_id="U1")
    counts.recount(integration, "order")
    everything = delete_all_references(integration, "order", world.actor)
    assert kept(integration) == full_count(integration) == counts.Counts(0, 6, 5)
    gone = integration.source.remote_ids.get(remote_id="S0").record
    update_record(
        gone,
        world.shop,
        Actor.for_connection(world.shop),
        data={},
        remote_id=None,
        remote_ref="",
        custom_data={},
    )
    assert kept(integration) == full_count(integration) == counts.Counts(0, 5, 4)

    restore_batch(everything, world.actor)

    assert kept(integration) == full_count(integration) == counts.Counts(4, 1, 0)


def test_delete_all_of_a_tab_never_counted_counts_it_once(world):
    integration = world.integration
    for number in range(3):
        make_reference(integration, source_id=f"S{number}", target_id=f"T{number}")
    assert not ReferenceCount.objects.filter(integration=integration).exists()

    delete_all_references(integration, "order", world.actor)

    assert kept(integration) == full_count(integration) == counts.Counts(0, 3, 3)


def test_lost_among_names_only_records_whose_removal_stands(world):
    integration = world.integration
    kept_lost = make_reference(integration, source_id="S1", target_id="T1")
    undone = make_reference(integration, source_id="S2", target_id="T2")
    never = make_reference(integration, source_id="S3")
    delete_reference(integration, kept_lost, world.actor)
    restore_batch(delete_reference(integration, undone, world.actor), world.actor)
    delete_reference(integration, undone, world.actor)
    restore_batch(
        delete_reference(
            integration, make_reference(integration, source_id="S4", target_id="T4"), world.actor
        ),
        world.actor,
    )

    lost = counts.lost_among(integration, [kept_lost.pk, undone.pk, never.pk])

    assert lost == {kept_lost.pk, undone.pk}

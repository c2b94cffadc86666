"""Races on PostgreSQL: several people (threads, each with its own connection) at the same time.

Exactly one wins, the others get the clear error, the database stays consistent and the audit
trail tells the final state.
"""

import threading

import pytest
from django.db import connection as default_connection
from django.db import connections

from common.errors import DomainError
from records.audit import Actor
from records.errors import Conflict, StaleEdit
from records.models import AuditEntry, BatchChange, RemoteId, writing
from references.services import (
    ReferenceInput,
    add_reference,
    delete_all_references,
    delete_reference,
    edit_reference,
    restore_batch,
)
from tests.factories import make_reference

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 6


def run_at_once(*jobs):
    """Run the jobs in threads released together; return each one's result or exception."""
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)

    def runner(index, job):
        try:
            barrier.wait(timeout=10)
            results[index] = job()
        except Exception as error:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def target_rows(world):
    return RemoteId.objects.filter(connection=world.erp, record_type="order")


def audit(world, action):
    return AuditEntry.objects.filter(tenant=world.tenant, action=action)


@pytest.mark.parametrize("linked_before", [False, True])
def test_many_people_linking_the_same_source_id_at_once(world, linked_before):
    for round_ in range(3):  # a few rounds: the interleaving differs from run to run
        source = f"S-{round_}"
        if linked_before:  # the source is known (unlinked) before the race starts
            make_reference(world.integration, source_id=source)
        inputs = [ReferenceInput(source, f"T-{round_}-{n}") for n in range(THREADS)]
        jobs = [
            (lambda data=data: add_reference(world.integration, "order", data, world.actor))
            for data in inputs
        ]
        results = run_at_once(*jobs)

        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(winners) == 1, results
        assert all(isinstance(error, Conflict) for error in losers), losers
        assert all(source in error.message for error in losers)
        (source_row,) = RemoteId.objects.filter(connection=world.shop, remote_id=source)
        (row,) = target_rows(world).filter(record_id=source_row.record_id)
        (entry,) = audit(world, AuditEntry.Action.ADD).filter(record_id=row.record_id)
        assert entry.after["target_id"] == row.remote_id


def test_many_people_linking_the_same_target_id_at_once(world):
    jobs = [
        (
            lambda n=n: add_reference(
                world.integration, "order", ReferenceInput(f"S-{n}", "T-1"), world.actor
            )
        )
        for n in range(THREADS)
    ]
    results = run_at_once(*jobs)

    losers = [r for r in results if isinstance(r, Exception)]
    assert len(losers) == THREADS - 1, results
    assert all(isinstance(error, Conflict) and "T-1" in error.message for error in losers)
    (row,) = target_rows(world)
    (entry,) = audit(world, AuditEntry.Action.ADD)
    assert entry.after["target_id"] == "T-1"
    assert entry.record_id == row.record_id
    assert (
        entry.after["source_id"]
        == RemoteId.objects.get(connection=world.shop, record_id=row.record_id).remote_id
    )


def test_edit_and_delete_of_the_same_reference_at_once(world):
    record = make_reference(world.integration, source_id="S-1", target_id="T-1")
    version = record.version

    def edit():
        return edit_reference(
            world.integration,
            record,
            ReferenceInput("S-1", "T-EDITED"),
            Actor.for_user(world.support),
            version=version,
        )

    def delete():
        return delete_reference(world.integration, record, world.actor, version=version)

    for _ in range(3):  # a few rounds: the interleaving differs from run to run
        results = run_at_once(edit, delete)
        winners = [r for r in results if not isinstance(r, Exception)]
        losers = [r for r in results if isinstance(r, Exception)]
        assert len(winners) == 1, f"both or neither won: {results}"
        assert all(isinstance(error, StaleEdit) for error in losers), losers
        edits = audit(world, AuditEntry.Action.EDIT).count()
        deletes = audit(world, AuditEntry.Action.DELETE).count()
        assert edits + deletes == 1
        if deletes:
            assert not target_rows(world).exists()
            entry = audit(world, AuditEntry.Action.DELETE).get()
            assert entry.before["target_id"] == "T-1"  # deleted what the person saw
        else:
            assert target_rows(world).get().remote_id == "T-EDITED"
        # Put the reference back for the next round.
        AuditEntry.objects.all().delete()
        with writing():
            target_rows(world).delete()
            RemoteId.objects.create(
                tenant=world.tenant,
                record=record,
                connection=world.erp,
                record_type="order",
                remote_id="T-1",
            )
        record.refresh_from_db()
        version = record.version


def test_delete_all_and_add_at_once(world):
    for n in range(50):
        make_reference(world.integration, source_id=f"S-{n}", target_id=f"T-{n}")

    results = run_at_once(
        lambda: delete_all_references(world.integration, "order", world.actor),
        lambda: add_reference(
            world.integration, "order", ReferenceInput("S-NEW", "T-NEW"), world.actor
        ),
    )

    batch, added = results
    assert not isinstance(batch, Exception) and not isinstance(added, Exception), results
    removed = set(BatchChange.objects.filter(batch=batch).values_list("remote_id", flat=True))
    left = set(target_rows(world).values_list("remote_id", flat=True))
    # Each target id is either in the batch (deleted, restorable) or still there: never both,
    # never neither. The new one is one or the other depending on who committed first.
    assert removed | left == {f"T-{n}" for n in range(50)} | {"T-NEW"}
    assert not removed & left
    assert batch.row_count == len(removed)
    entry = audit(world, AuditEntry.Action.DELETE_ALL).get()
    assert entry.before == {"count": len(removed)}

    restore_batch(batch, world.actor)
    assert target_rows(world).count() == 51


def test_edit_and_delete_all_at_once(world):
    records = [
        make_reference(world.integration, source_id=f"S-{n}", target_id=f"T-{n}") for n in range(20)
    ]
    record = records[5]
    version = record.version

    edited, batch = run_at_once(
        lambda: edit_reference(
            world.integration,
            record,
            ReferenceInput("S-5", "T-EDITED"),
            Actor.for_user(world.support),
            version=version,
        ),
        lambda: delete_all_references(world.integration, "order", world.actor),
    )

    assert not isinstance(batch, Exception), batch
    assert not target_rows(world).exists()  # whichever went first, delete-all took every row
    removed = set(BatchChange.objects.filter(batch=batch).values_list("remote_id", flat=True))
    assert batch.row_count == len(removed) == 20
    if isinstance(edited, Exception):
        # Delete-all first: the edit was opened on a version that no longer exists.
        assert isinstance(edited, StaleEdit), edited
        assert "T-5" in removed and "T-EDITED" not in removed
        assert not audit(world, AuditEntry.Action.EDIT).exists()
    else:
        # The edit first: delete-all removed (and can restore) the edited id, not the old one.
        assert "T-EDITED" in removed and "T-5" not in removed
        assert audit(world, AuditEntry.Action.EDIT).get().after["target_id"] == "T-EDITED"

    restore_batch(batch, world.actor)
    assert target_rows(world).count() == 20


def test_two_delete_alls_at_once_delete_each_row_once(world):
    for n in range(30):
        make_reference(world.integration, source_id=f"S-{n}", target_id=f"T-{n}")

    results = run_at_once(
        *[lambda: delete_all_references(world.integration, "order", world.actor)] * 2
    )

    assert not any(isinstance(r, Exception) for r in results), results
    counts = sorted(batch.row_count for batch in results)
    assert sum(counts) == 30, counts  # one got them all (or they split): none twice
    assert BatchChange.objects.count() == 30
    assert not target_rows(world).exists()


def test_restoring_the_same_batch_twice_at_once(world):
    record = make_reference(world.integration, source_id="S-1", target_id="T-1")
    batch = delete_reference(world.integration, record, world.actor)

    results = run_at_once(*[lambda: restore_batch(batch, world.actor)] * 3)

    assert sum(1 for r in results if r == 1) == 1, results
    assert all(isinstance(r, DomainError) for r in results if r != 1)
    assert target_rows(world).count() == 1
    assert audit(world, AuditEntry.Action.RESTORE).count() == 1


def test_threads_used_their_own_connections():
    seen = set()
    run_at_once(*[lambda: seen.add(id(connections["default"]))] * 2)
    assert id(default_connection) not in seen

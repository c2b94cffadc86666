"""The reference rules (docs/architecture.md), exercised on the services (both databases)."""

import pytest

from common.errors import DomainError, InvalidValue
from records.audit import Actor
from records.changes import RestoreConflict
from records.errors import Conflict, StaleEdit
from records.models import AuditEntry, Batch, BatchChange, Record, RemoteId, writing
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
from tests.factories import RemoteIdFactory, make_reference

pytestmark = pytest.mark.django_db


def ids_of(world, record):
    rows = {r.connection_id: r for r in RemoteId.objects.filter(record=record)}
    source, target = rows.get(world.shop.pk), rows.get(world.erp.pk)
    return (source and source.remote_id, target and target.remote_id)


def add(world, source_id, target_id, **refs):
    return add_reference(
        world.integration,
        "order",
        ReferenceInput(source_id=source_id, target_id=target_id, **refs),
        world.actor,
    )


class TestAdd:
    def test_new_source_creates_one_record_with_both_ids(self, world):
        record = add(world, " 5001 ", "INV-1", source_ref="#1", target_ref="Faktura 1")

        assert ids_of(world, record) == ("5001", "INV-1")
        assert record.record_type == "order"
        assert record.last_modified_by == "user/anna"
        assert len(record.local_id) == 32
        entry = AuditEntry.objects.get(record=record)
        assert entry.action == "add"
        assert entry.actor == "user/anna"
        assert entry.before is None
        assert entry.after == {
            "source_id": "5001",
            "source_ref": "#1",
            "target_id": "INV-1",
            "target_ref": "Faktura 1",
        }

    def test_known_unlinked_source_gets_the_target_on_the_same_record(self, world):
        existing = make_reference(world.integration, source_id="5001")

        record = add(world, "5001", "INV-1")

        assert record.pk == existing.pk
        assert ids_of(world, existing) == ("5001", "INV-1")
        assert Record.objects.count() == 1 + 0  # no new record for the same source
        assert record.version == existing.version + 1

    def test_target_linked_to_another_source_is_refused_naming_that_link(self, world):
        holder = make_reference(world.integration, source_id="5001", target_id="INV-1")

        with pytest.raises(Conflict) as error:
            add(world, "5002", "INV-1")

        assert error.value.field == "target_id"
        assert error.value.message == "Fortnox id INV-1 is already linked to Shopify id 5001."
        assert error.value.holder == holder
        assert not RemoteId.objects.filter(remote_id="5002").exists()
        assert not AuditEntry.objects.exists()

    def test_source_already_linked_is_refused(self, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")

        with pytest.raises(Conflict) as error:
            add(world, "5001", "INV-2")

        assert error.value.field == "source_id"
        assert "already linked to Fortnox id INV-1" in error.value.message
        assert not RemoteId.objects.filter(remote_id="INV-2").exists()

    def test_ids_are_case_sensitive_strings(self, world):
        add(world, "abc", "X-1")
        record = add(world, "ABC", "x-1")
        assert ids_of(world, record) == ("ABC", "x-1")

    @pytest.mark.parametrize(
        ("source_id", "message"),
        [
            ("   ", "Shopify id is required."),
            ("50\n01", "Shopify id contains control characters"),
            ("x" * 256, "Shopify id is 256 characters long; at most 255 are allowed."),
        ],
    )
    def test_invalid_ids_are_refused_by_field(self, world, source_id, message):
        with pytest.raises(InvalidValue) as error:
            add(world, source_id, "INV-1")
        assert error.value.field == "source_id"
        assert error.value.message.startswith(message)
        assert not Record.objects.exists()

    def test_entity_type_must_be_synced_by_the_integration(self, world):
        world.integration.entity_types = ["article"]
        world.integration.save()
        with pytest.raises(InvalidValue):
            add(world, "5001", "INV-1")

    def test_same_id_in_another_record_type_is_no_conflict(self, world):
        make_reference(world.integration, "article", source_id="5001", target_id="INV-1")
        record = add(world, "5001", "INV-1")
        assert record.record_type == "order"


class TestEdit:
    def test_edit_changes_target_and_writes_before_and_after(self, world):
        record = add(world, "5001", "INV-1")

        edited = edit_reference(
            world.integration,
            record,
            ReferenceInput(source_id="5001", target_id="INV-9", target_ref="Faktura 9"),
            Actor("user", "erik"),
            version=record.version,
        )

        assert ids_of(world, edited) == ("5001", "INV-9")
        assert edited.last_modified_by == "user/erik"
        entry = AuditEntry.objects.filter(action="edit").get()
        assert entry.before["target_id"] == "INV-1"
        assert entry.after["target_id"] == "INV-9"

    def test_stale_version_is_refused_with_who_and_current_values(self, world):
        record = add(world, "5001", "INV-1")
        opened_version = record.version
        edit_reference(
            world.integration,
            record,
            ReferenceInput(source_id="5001", target_id="INV-2"),
            Actor("user", "erik"),
            version=opened_version,
        )

        with pytest.raises(StaleEdit) as error:
            edit_reference(
                world.integration,
                record,
                ReferenceInput(source_id="5001", target_id="INV-3"),
                world.actor,
                version=opened_version,
            )

        assert error.value.changed_by == "user/erik"
        assert error.value.message.startswith("Changed by erik at ")
        assert error.value.current["target_id"] == "INV-2"
        assert ids_of(world, record) == ("5001", "INV-2")

    def test_edit_to_a_target_linked_elsewhere_is_refused(self, world):
        add(world, "5001", "INV-1")
        record = add(world, "5002", "INV-2")

        with pytest.raises(Conflict) as error:
            edit_reference(
                world.integration,
                record,
                ReferenceInput(source_id="5002", target_id="INV-1"),
                world.actor,
                version=record.version,
            )
        assert error.value.message == "Fortnox id INV-1 is already linked to Shopify id 5001."
        assert ids_of(world, record) == ("5002", "INV-2")
        # the refused edit did not use up the version either
        assert Record.objects.get(pk=record.pk).version == record.version

    def test_edit_to_a_source_id_used_by_another_record_is_refused(self, world):
        add(world, "5001", "INV-1")
        record = add(world, "5002", "INV-2")

        with pytest.raises(Conflict) as error:
            edit_reference(
                world.integration,
                record,
                ReferenceInput(source_id="5001", target_id="INV-2"),
                world.actor,
                version=record.version,
            )
        assert error.value.field == "source_id"
        assert "linked to Fortnox id INV-1" in error.value.message


class TestDeleteAndRestore:
    def test_delete_removes_only_the_target_id_and_can_be_undone(self, world):
        record = add(world, "5001", "INV-1")

        batch = delete_reference(world.integration, record, world.actor)

        assert ids_of(world, record) == ("5001", None)
        assert Record.objects.filter(pk=record.pk).exists()
        assert AuditEntry.objects.filter(action="delete", batch=batch, record=record).exists()

        assert restore_batch(batch, world.actor) == 1
        assert ids_of(world, record) == ("5001", "INV-1")
        batch.refresh_from_db()
        assert batch.restored_by == "user/anna"

    def test_restore_twice_is_refused(self, world):
        batch = delete_reference(world.integration, add(world, "5001", "INV-1"), world.actor)
        restore_batch(batch, world.actor)
        with pytest.raises(DomainError, match="already undone"):
            restore_batch(batch, world.actor)

    def test_restore_is_refused_when_the_id_is_taken_again(self, world):
        record = add(world, "5001", "INV-1")
        batch = delete_reference(world.integration, record, world.actor)
        add(world, "5002", "INV-1")

        with pytest.raises(RestoreConflict, match="1 of the ids are in use again"):
            restore_batch(batch, world.actor)
        assert ids_of(world, record) == ("5001", None)
        assert not Batch.objects.get(pk=batch.pk).is_restored

    def test_delete_all_removes_every_target_row_of_that_type_in_one_batch(self, world):
        for n in range(5):
            add(world, f"500{n}", f"INV-{n}")
        unlinked = make_reference(world.integration, source_id="6000")  # untouched
        article = make_reference(world.integration, "article", source_id="A1", target_id="T1")
        # the target knows a record the source does not: not a reference of this integration
        lone = RemoteIdFactory(
            record__tenant=world.tenant, connection=world.erp, remote_id="INV-lone"
        )
        # another tenant's rows stay
        other = make_reference(world.other_integration, source_id="5000", target_id="INV-0")
        assert count_references(world.integration, "order") == 5

        batch = delete_all_references(world.integration, "order", world.actor)

        assert batch.row_count == 5
        assert count_references(world.integration, "order") == 0
        assert count_unlinked(world.integration, "order") == 6
        assert RemoteId.objects.filter(pk=lone.pk).exists()
        assert ids_of(world, article)[1] == "T1"
        assert RemoteId.objects.filter(record=other).count() == 2
        entry = AuditEntry.objects.get(action="delete_all")
        assert entry.batch == batch
        assert entry.before == {"count": 5}
        # the five records that lost their target are marked changed; the unlinked one is not
        assert Record.objects.filter(last_modified_by="user/anna", record_type="order").count() == 5
        assert Record.objects.get(pk=unlinked.pk).last_modified_by == "system/tests"
        assert Record.objects.get(pk=other.pk).last_modified_by == "system/tests"

    def test_deleting_a_record_or_the_batch_also_deletes_its_undo_rows(self, world):
        # BatchChange has no database foreign keys (delete-all writes 256k of them);
        # the deletes must still cascade to it.
        records = [add(world, f"500{n}", f"INV-{n}") for n in range(3)]
        batch = delete_all_references(world.integration, "order", world.actor)
        assert BatchChange.objects.filter(batch=batch).count() == 3

        Record.objects.get(pk=records[0].pk).delete()
        assert BatchChange.objects.filter(batch=batch).count() == 2

        with writing():
            Batch.objects.get(pk=batch.pk).delete()
        assert not BatchChange.objects.filter(batch=batch).exists()

    def test_restore_after_delete_all_puts_every_link_back(self, world):
        for n in range(5):
            add(world, f"500{n}", f"INV-{n}")
        batch = delete_all_references(world.integration, "order", world.actor)

        assert restore_batch(batch, Actor("user", "erik")) == 5

        assert count_references(world.integration, "order") == 5
        pairs = {ids_of(world, r) for r in Record.objects.filter(record_type="order")}
        assert pairs == {(f"500{n}", f"INV-{n}") for n in range(5)}
        assert AuditEntry.objects.filter(action="restore", batch=batch).count() == 1

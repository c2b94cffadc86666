"""Suggested links: find, accept one, accept all, restore (both databases)."""

import pytest

from common.errors import DomainError
from records.models import AuditEntry, Batch, CustomData, Record, RemoteId, writing
from references.services import restore_batch
from references.suggestions import accept_suggestions, find_suggestions, match_fields
from tests.factories import CustomDataFactory, RecordFactory, RemoteIdFactory, make_reference

pytestmark = pytest.mark.django_db


def target_only(world, target_id, *, ref="", data=None):
    record = RecordFactory(tenant=world.tenant, record_type="order", data=data or {})
    RemoteIdFactory(record=record, connection=world.erp, remote_id=target_id, remote_ref=ref)
    return record


@pytest.fixture
def pairs(world):
    """Two unlinked Shopify orders, each with a Fortnox-only twin carrying the same ref."""
    a1 = make_reference(world.integration, source_id="5001", source_ref="1001")
    a2 = make_reference(world.integration, source_id="5002", source_ref="1002")
    b1 = target_only(world, "INV-1", ref="1001")
    b2 = target_only(world, "INV-2", ref="1002")
    return a1, a2, b1, b2


def accept(world, suggestions, field="remote_ref"):
    return accept_suggestions(
        world.integration,
        "order",
        field,
        [(s.source.pk, s.target.pk) for s in suggestions],
        world.actor,
    )


def target_of(world, record):
    row = RemoteId.objects.filter(record=record, connection=world.erp).first()
    return row and row.remote_id


class TestFind:
    def test_unlinked_source_and_target_only_record_with_the_same_ref_are_suggested(
        self, world, pairs
    ):
        a1, a2, b1, b2 = pairs
        suggestions, total = find_suggestions(world.integration, "order")
        assert total == 2
        assert [(s.source.record, s.target.record, s.key) for s in suggestions] == [
            (a1, b1, "1001"),
            (a2, b2, "1002"),
        ]

    def test_ambiguous_linked_and_third_system_records_are_not_suggested(self, world, pairs):
        # a second target-only record with ref 1002: ambiguous
        target_only(world, "INV-2b", ref="1002")
        # a linked source with ref 1003 and a target-only twin: the source is not unlinked
        make_reference(world.integration, source_id="5003", source_ref="1003", target_id="X")
        target_only(world, "INV-3", ref="1003")
        # a target record that a third system also knows is never merged
        make_reference(world.integration, source_id="5004", source_ref="1004")
        third = target_only(world, "INV-4", ref="1004")
        RemoteIdFactory(record=third, connection__tenant=world.tenant, remote_id="W-4")

        suggestions, total = find_suggestions(world.integration, "order")

        assert [s.key for s in suggestions] == ["1001"]
        assert total == 1

    def test_match_on_a_data_field(self, world):
        a = make_reference(world.integration, source_id="5001")
        a.data = {"orderNumber": 1001}
        a.save()
        b = target_only(world, "INV-1", data={"orderNumber": 1001})

        assert ("orderNumber", "Data: orderNumber") in match_fields(world.integration, "order")
        suggestions, _ = find_suggestions(world.integration, "order", "orderNumber")

        assert [(s.source.record, s.target.record) for s in suggestions] == [(a, b)]


class TestAccept:
    def test_accept_one_moves_the_target_id_and_removes_the_duplicate(self, world, pairs):
        a1, a2, b1, b2 = pairs
        kept = CustomDataFactory(record=b1, key="note", value="from fortnox")
        clash_on_a = CustomDataFactory(record=a1, key="color", value="red")
        CustomDataFactory(record=b1, key="color", value="blue")
        old_entry = AuditEntry.objects.create(
            tenant=world.tenant, actor="system/sync", action="record_create", record=b1
        )
        suggestions, _ = find_suggestions(world.integration, "order")

        batch = accept(world, suggestions[:1])

        assert batch.kind == "link_suggestions" and batch.row_count == 1
        assert target_of(world, a1) == "INV-1"
        assert not Record.objects.filter(pk=b1.pk).exists()
        assert CustomData.objects.get(pk=kept.pk).record == a1
        assert CustomData.objects.get(record=a1, key="color").pk == clash_on_a.pk
        assert AuditEntry.objects.get(pk=old_entry.pk).record == a1
        link = AuditEntry.objects.get(action="link")
        assert link.record == a1 and link.batch == batch
        assert link.after["target_id"] == "INV-1"
        assert Record.objects.filter(pk=b2.pk).exists()  # not accepted
        a1.refresh_from_db()
        assert a1.last_modified_by == "user/anna"

    def test_accept_all_then_restore_brings_back_the_records_and_moves_ids_back(self, world, pairs):
        a1, a2, b1, b2 = pairs
        note = CustomDataFactory(record=b1, key="note", value="from fortnox")
        CustomDataFactory(record=a1, key="color", value="red")
        CustomDataFactory(record=b1, key="color", value="blue")
        history = AuditEntry.objects.create(
            tenant=world.tenant, actor="system/sync", action="record_create", record=b1
        )
        suggestions, _ = find_suggestions(world.integration, "order")
        batch = accept(world, suggestions)
        assert (target_of(world, a1), target_of(world, a2)) == ("INV-1", "INV-2")
        assert Record.objects.count() == 2

        restore_batch(Batch.objects.get(pk=batch.pk), world.actor)

        assert Record.objects.count() == 4
        back = Record.objects.get(local_id=b1.local_id)
        assert back.pk == b1.pk and back.record_type == "order"
        assert (target_of(world, a1), target_of(world, a2)) == (None, None)
        assert target_of(world, back) == "INV-1"
        assert RemoteId.objects.get(remote_id="INV-1").remote_ref == "1001"
        assert CustomData.objects.get(pk=note.pk).record == back
        assert CustomData.objects.get(record=back, key="color").value == "blue"
        assert CustomData.objects.get(record=a1, key="color").value == "red"
        assert AuditEntry.objects.get(pk=history.pk).record == back
        assert find_suggestions(world.integration, "order")[1] == 2

    def test_restore_is_refused_when_the_id_is_taken_again(self, world, pairs):
        suggestions, _ = find_suggestions(world.integration, "order")
        batch = accept(world, suggestions[:1])
        a1 = pairs[0]
        with writing():  # a sync removed it
            RemoteId.objects.filter(record=a1, connection=world.erp).delete()
        make_reference(world.integration, source_id="7777", target_id="INV-1")

        with pytest.raises(DomainError, match="in use again"):
            restore_batch(batch, world.actor)

        assert not Record.objects.filter(local_id=pairs[2].local_id).exists()

    def test_pairs_that_no_longer_hold_are_not_accepted(self, world, pairs):
        suggestions, _ = find_suggestions(world.integration, "order")
        make_reference(world.integration, source_id="5009", source_ref="1001")  # now ambiguous

        batch = accept(world, suggestions)

        assert batch.row_count == 1
        assert target_of(world, pairs[0]) is None
        with pytest.raises(DomainError, match="no longer apply"):
            accept(world, suggestions[:1])

"""The change engine: what plan() says is what apply() writes, for every kind of change."""

import pytest

from records import changes
from records.audit import Actor
from records.custom_data import CustomDataInput, set_custom_data
from records.models import AuditEntry, Batch, BatchChange, Record, RemoteId
from records.services import create_record_with_remote_id, update_record
from references import services
from references.imports import import_change_set, parse_csv
from references.services import ReferenceInput
from references.suggestions import accept_change_set, find_suggestions
from tests.factories import RecordFactory, RemoteIdFactory, make_reference

pytestmark = pytest.mark.django_db


def link(world, *lines, **options):
    return services.reference_change_set(
        world.integration,
        "order",
        world.actor,
        Batch.Kind.IMPORT,
        [
            changes.Change(changes.Action.LINK, line=n, source_id=s, target_id=t)
            for n, (s, t) in enumerate(lines, start=1)
        ],
        relink=True,
        **options,
    )


def written_rows(batch) -> dict[str, int]:
    rows = BatchChange.objects.filter(batch=batch)
    return {
        "added": rows.filter(change="added").count(),
        "removed": rows.filter(change="removed").count(),
    }


def assert_plan_is_what_apply_writes(change_set):
    planned = changes.plan(change_set)
    applied = changes.apply(change_set)
    assert applied.counts == planned.counts
    return planned, applied


class TestPlanEqualsApply:
    def test_links_new_changed_unchanged_and_rejected(self, world):
        make_reference(world.integration, source_id="S1", target_id="T1")
        make_reference(world.integration, source_id="S2", target_id="T2")
        make_reference(world.integration, source_id="S9", target_id="TAKEN")
        change_set = link(
            world, ("S1", "T1"), ("S2", "T20"), ("S3", "T3"), ("S4", "TAKEN"), ("", "T5")
        )

        planned, applied = assert_plan_is_what_apply_writes(change_set)

        assert planned.counts == {
            "new": 1,
            "changed": 1,
            "removed": 0,
            "unchanged": 1,
            "rejected": 2,
        }
        # S2: T2 removed, T20 added; S3: a new record with S3 and T3.
        assert written_rows(applied.batch) == {"added": 3, "removed": 1}
        assert applied.batch.row_count == 2

    def test_add_edit_and_delete(self, world):
        record = services.add_reference(
            world.integration, "order", ReferenceInput("S1", "T1"), world.actor
        )
        edit = services.reference_change_set(
            world.integration,
            "order",
            world.actor,
            Batch.Kind.EDIT,
            [
                changes.Change(
                    changes.Action.EDIT,
                    record_id=record.pk,
                    source_id="S1",
                    target_id="T2",
                    version=record.version,
                )
            ],
        )
        _, applied = assert_plan_is_what_apply_writes(edit)
        assert applied.counts["changed"] == 1
        assert written_rows(applied.batch) == {"added": 1, "removed": 1}

        unlink = services.reference_change_set(
            world.integration,
            "order",
            world.actor,
            Batch.Kind.DELETE,
            [changes.Change(changes.Action.UNLINK, record_id=record.pk)],
        )
        _, applied = assert_plan_is_what_apply_writes(unlink)
        assert applied.counts["removed"] == 1
        assert written_rows(applied.batch) == {"added": 0, "removed": 1}

    def test_delete_all_and_restore(self, world):
        for n in range(4):
            make_reference(world.integration, source_id=f"S{n}", target_id=f"T{n}")
        make_reference(world.integration, source_id="S-unlinked")

        _, deleted = assert_plan_is_what_apply_writes(
            services.delete_all_change_set(world.integration, "order", world.actor)
        )
        assert deleted.counts["removed"] == 4
        assert written_rows(deleted.batch) == {"added": 0, "removed": 4}

        _, restored = assert_plan_is_what_apply_writes(
            changes.Restore(batch=deleted.batch, actor=world.actor)
        )
        assert restored.counts["new"] == 4
        assert RemoteId.objects.filter(connection=world.erp).count() == 4

    def test_accepted_suggestions(self, world):
        for n in range(3):
            make_reference(world.integration, source_id=f"S{n}", source_ref=f"#{n}")
            twin = RecordFactory(tenant=world.tenant, record_type="order")
            RemoteIdFactory(
                record=twin, connection=world.erp, remote_id=f"T{n}", remote_ref=f"#{n}"
            )
        found, _ = find_suggestions(world.integration, "order")

        _, applied = assert_plan_is_what_apply_writes(
            accept_change_set(world.integration, "order", "remote_ref", found, world.actor)
        )

        assert applied.counts["new"] == 3
        # Each merge moves a target id from the duplicate to the survivor. The duplicate is
        # deleted (its rows cascade), so what restoring needs is kept in its snapshot.
        assert written_rows(applied.batch) == {"added": 3, "removed": 0}
        snapshots = applied.batch.details["removed_records"]
        assert sorted(c["remote_id"] for snap in snapshots for c in snap["batch_changes"]) == [
            "T0",
            "T1",
            "T2",
        ]
        assert Record.objects.count() == 3

    def test_an_api_connection_setting_its_own_id(self, world, warehouse_connection):
        record = RecordFactory(tenant=world.tenant, record_type="order")
        change_set = changes.ChangeSet(
            tenant=world.tenant,
            record_type="order",
            actor=Actor.for_connection(warehouse_connection),
            kind=Batch.Kind.API,
            changes=[
                changes.Change(
                    changes.Action.SET_ID,
                    record_id=record.pk,
                    connection_id=warehouse_connection.pk,
                    remote_id="WH-1",
                )
            ],
        )
        _, applied = assert_plan_is_what_apply_writes(change_set)
        assert applied.counts["new"] == 1
        assert written_rows(applied.batch) == {"added": 1, "removed": 0}


@pytest.fixture
def warehouse_connection(world):
    from tests.factories import ConnectionFactory

    return ConnectionFactory(tenant=world.tenant, name="Warehouse API", connector__code="api")


class TestAmbiguousIds:
    def test_every_line_of_an_id_used_two_ways_is_rejected_whatever_else_is_wrong(self, world):
        make_reference(world.integration, source_id="S9", target_id="TAKEN")
        text = (
            "source_id,target_id\n"
            "S1,T1\n"  # S1 -> two targets, and T1 <- two sources
            "S1,T2\n"
            "S3,T1\n"  # the line the old import let through
            "S4,TAKEN\n"  # taken in the database, and TAKEN <- two sources in the file
            "S5,TAKEN\n"
            "S6,T6\n"  # fine
            "S7,T7\x07\n"  # invalid, and T7... <- two sources
            "S8,T7\x07\n"
        )
        planned = changes.plan(import_change_set(world.integration, "order", parse_csv(text)))

        by_line = {line.line: line for line in planned.lines}
        assert [n for n, line in by_line.items() if line.accepted] == [7]  # S6,T6 is line 7
        for number in (2, 3, 4):
            assert "more than one line" in by_line[number].reason
        for number in (5, 6):
            assert "Fortnox id TAKEN is on more than one line (5, 6)" in by_line[number].reason
        assert planned.counts["rejected"] == 7

    def test_the_same_pair_twice_keeps_the_first_line(self, world):
        planned = changes.plan(link(world, ("S1", "T1"), ("S1", "T1")))
        assert [line.outcome for line in planned.lines] == ["new", "rejected"]
        assert planned.lines[1].reason == "Duplicate of line 1."

    def test_a_swap_within_the_set_is_allowed(self, world):
        make_reference(world.integration, source_id="S1", target_id="T1")
        make_reference(world.integration, source_id="S2", target_id="T2")

        applied = changes.apply(link(world, ("S1", "T2"), ("S2", "T1")))

        assert applied.counts["changed"] == 2
        targets = {
            record.remote_ids.get(connection=world.shop).remote_id: record.remote_ids.get(
                connection=world.erp
            ).remote_id
            for record in Record.objects.all()
        }
        assert targets == {"S1": "T2", "S2": "T1"}


class TestOneVersionBumpPerWrite:
    def test_add_edit_and_delete_each_bump_once(self, world):
        record = make_reference(world.integration, source_id="S1")
        start = record.version

        record = services.add_reference(
            world.integration, "order", ReferenceInput("S1", "T1"), world.actor
        )
        assert record.version == start + 1
        record = services.edit_reference(
            world.integration,
            record,
            ReferenceInput("S1", "T2"),
            world.actor,
            version=record.version,
        )
        assert record.version == start + 2
        services.delete_reference(world.integration, record, world.actor, version=record.version)
        record.refresh_from_db()
        assert record.version == start + 3

    def test_an_unchanged_edit_does_not_bump(self, world):
        record = make_reference(world.integration, source_id="S1", target_id="T1")
        after = services.edit_reference(
            world.integration,
            record,
            ReferenceInput("S1", "T1"),
            world.actor,
            version=record.version,
        )
        assert after.version == record.version
        assert not Batch.objects.exists()

    def test_an_api_create_with_id_and_custom_data_is_version_1(self, world, warehouse_connection):
        actor = Actor.for_connection(warehouse_connection)
        record = create_record_with_remote_id(
            world.tenant,
            "order",
            warehouse_connection,
            actor,
            remote_id="WH-1",
            data={"n": 1},
            custom_data={"|x-wms|bin": {"type": "string", "value": "A-1"}},
        )
        assert record.version == 1

    def test_an_api_put_that_changes_everything_bumps_once(self, world, warehouse_connection):
        actor = Actor.for_connection(warehouse_connection)
        record = create_record_with_remote_id(
            world.tenant,
            "order",
            warehouse_connection,
            actor,
            remote_id="WH-1",
            custom_data={"|x-wms|bin": {"type": "string", "value": "A-1"}},
        )
        update_record(
            record,
            warehouse_connection,
            actor,
            data={"n": 2},
            remote_id="WH-2",
            remote_ref="ref",
            custom_data={"|x-wms|row": {"type": "integer", "value": 3}},
            if_version=1,
        )
        record.refresh_from_db()
        assert record.version == 2

        update_record(
            record,
            warehouse_connection,
            actor,
            data={"n": 2},
            remote_id="WH-2",
            remote_ref="ref",
            custom_data={"|x-wms|row": {"type": "integer", "value": 3}},
        )
        record.refresh_from_db()
        assert record.version == 2  # nothing changed: no bump

    def test_custom_data_with_several_entries_bumps_once(self, world):
        record = RecordFactory(tenant=world.tenant)
        set_custom_data(
            record,
            [
                CustomDataInput("x-a", "one", "string", "1"),
                CustomDataInput("x-a", "two", "string", "2"),
            ],
            world.actor,
        )
        record.refresh_from_db()
        assert record.version == 2


def test_every_applied_change_is_audited_once_with_before_and_after(world):
    record = services.add_reference(
        world.integration, "order", ReferenceInput("S1", "T1", target_ref="Faktura 1"), world.actor
    )
    services.edit_reference(
        world.integration, record, ReferenceInput("S1", "T2"), world.actor, version=record.version
    )
    entries = AuditEntry.objects.filter(record=record).order_by("id")
    assert [
        (e.action, e.before and e.before["target_id"], e.after["target_id"]) for e in entries
    ] == [
        ("add", None, "T1"),
        ("edit", "T1", "T2"),
    ]
    assert entries[1].summary == "Changed target id T1 → T2, target ref Faktura 1 → -"

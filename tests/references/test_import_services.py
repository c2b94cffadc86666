"""CSV import services: parsing, the dry-run plan, apply as one batch, restore (both databases)."""

import pytest

from common.errors import DomainError
from records import changes
from records.models import AuditEntry, Batch, BatchChange, Record, RemoteId
from references.imports import (
    ImportFileError,
    Kind,
    apply_import,
    decode_csv,
    parse_csv,
    plan_text,
)
from references.services import restore_batch
from tests.factories import RemoteIdFactory, make_reference

pytestmark = pytest.mark.django_db


def references(world, record_type="order"):
    """{source id: target id or None} of the integration, straight from the database."""
    rows = RemoteId.objects.filter(record__record_type=record_type)
    targets = {r.record_id: r.remote_id for r in rows.filter(connection=world.erp)}
    return {r.remote_id: targets.get(r.record_id) for r in rows.filter(connection=world.shop)}


def plan(world, text):
    return plan_text(world.integration, "order", text)


def apply(world, text, **kwargs):
    return apply_import(world.integration, "order", text, world.actor, **kwargs)


def reasons(plan_):
    return {row.line: row.reason for row in plan_.of(Kind.REJECTED)}


class TestReadingTheFile:
    def test_excel_csv_utf8_with_bom_semicolons_and_crlf(self):
        data = "\ufeffSource_ID ;Target_Id;target_ref\r\n5001;INV-1;Faktura å\r\n".encode()
        parsed = parse_csv(decode_csv(data))
        assert parsed.delimiter == ";"
        assert [(r.line, r.source_id, r.target_id, r.target_ref) for r in parsed.rows] == [
            (2, "5001", "INV-1", "Faktura å")
        ]

    def test_columns_in_any_order_and_unknown_columns_are_ignored(self):
        parsed = parse_csv("notes,target_id,source_id\nhello,INV-1,5001\n")
        assert (parsed.rows[0].source_id, parsed.rows[0].target_id) == ("5001", "INV-1")
        assert parsed.ignored_columns == ["notes"]

    def test_excel_sep_line_blank_lines_and_trailing_empty_columns_are_fine(self):
        parsed = parse_csv("sep=;\nsource_id;target_id\n\n5001;INV-1;;\n;;\n5002;INV-2\n")
        assert [(r.line, r.source_id) for r in parsed.rows] == [(4, "5001"), (6, "5002")]

    def test_latin1_bytes_are_refused_with_the_line_and_how_to_save_as_utf8(self):
        data = "source_id,target_id\n5001,Fakturå\n".encode("latin-1")
        with pytest.raises(ImportFileError) as error:
            decode_csv(data)
        assert "not UTF-8 text (line 2 has the byte 0xE5)" in error.value.message
        assert "CSV UTF-8" in error.value.message

    def test_wrong_header_names_what_was_found(self):
        with pytest.raises(ImportFileError) as error:
            parse_csv("shop,erp\n5001,INV-1\n")
        assert "source_id and target_id" in error.value.message
        assert "Found: shop, erp." in error.value.message

    def test_mixed_delimiters_in_the_header_or_a_line_are_refused(self):
        with pytest.raises(ImportFileError, match="mixes commas and semicolons"):
            parse_csv("source_id,target_id;source_ref\n")
        with pytest.raises(ImportFileError) as error:
            parse_csv("source_id,target_id\n5001,INV-1\n5002;INV-2\n")
        assert error.value.message == (
            "Line 3 is separated by ';' but the header uses ','. "
            "Use one separator throughout the file."
        )

    def test_ten_megabytes_of_garbage_is_one_clear_error(self):
        import random

        garbage = random.Random(7).randbytes(10 * 1024 * 1024)
        with pytest.raises(ImportFileError, match="not UTF-8 text"):
            decode_csv(garbage)
        text_garbage = "lorem ipsum dolor sit amet " * 400_000
        with pytest.raises(ImportFileError, match="must be a header"):
            parse_csv(decode_csv(text_garbage.encode()))

    def test_empty_file(self):
        with pytest.raises(ImportFileError, match="empty"):
            decode_csv(b"\xef\xbb\xbf \r\n")


class TestPlan:
    def test_every_row_is_classified_and_nothing_is_written(self, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")
        make_reference(world.integration, source_id="5002", target_id="INV-2")
        make_reference(world.integration, source_id="5003")
        make_reference(world.integration, source_id="9000", target_id="INV-TAKEN")
        text = (
            "source_id,target_id\n"
            "5001,INV-1\n"  # unchanged
            "5002,INV-20\n"  # change
            "5003,INV-3\n"  # new link on the known, unlinked source
            "5004,INV-4\n"  # new record
            "5005,INV-TAKEN\n"  # target already linked
            " ,INV-6\n"  # empty source id
            "50\x0707,INV-7\n"  # control character
            f"{'x' * 256},INV-8\n"  # too long
            "5009,INV-9\n5009,INV-99\n"  # source twice, different targets
            "5010,INV-10\n5010,INV-10\n"  # exact duplicate
            "5011\n"  # wrong column count
        )
        before = (Record.objects.count(), RemoteId.objects.count(), AuditEntry.objects.count())

        result = plan(world, text)

        assert result.counts == {"new": 3, "changed": 1, "unchanged": 1, "rejected": 8}
        change = result.of(Kind.CHANGE)[0]
        assert (change.source_id, change.before_target, change.target_id) == (
            "5002",
            "INV-2",
            "INV-20",
        )
        assert reasons(result) == {
            6: "Fortnox id INV-TAKEN is already linked to Shopify id 9000.",
            7: "Shopify id is required.",
            8: "Shopify id contains control characters (tabs, line breaks...); remove them.",
            9: "Shopify id is 256 characters long; at most 255 are allowed.",
            10: "Shopify id 5009 is on more than one line (10, 11) with different ids; "
            "fix the file so it appears once.",
            11: "Shopify id 5009 is on more than one line (10, 11) with different ids; "
            "fix the file so it appears once.",
            13: "Duplicate of line 12.",
            14: "Expected 2 columns like the header, found 1.",
        }
        after = (Record.objects.count(), RemoteId.objects.count(), AuditEntry.objects.count())
        assert after == before
        assert not Batch.objects.exists()

    def test_target_of_a_record_the_source_does_not_know_points_to_suggestions(self, world):
        record = Record.objects.create(
            tenant=world.tenant, record_type="order", last_modified_by="system/x"
        )
        RemoteIdFactory(record=record, connection=world.erp, remote_id="INV-1")
        result = plan(world, "source_id,target_id\n5001,INV-1\n")
        assert "which Shopify does not know; see Suggested links" in reasons(result)[2]

    def test_a_swap_of_two_targets_in_one_file_is_allowed(self, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")
        make_reference(world.integration, source_id="5002", target_id="INV-2")
        text = "source_id,target_id\n5001,INV-2\n5002,INV-1\n"

        assert plan(world, text).counts["changed"] == 2
        apply(world, text)

        assert references(world) == {"5001": "INV-2", "5002": "INV-1"}

    def test_empty_ref_keeps_the_current_ref_and_a_new_ref_is_a_change(self, world):
        make_reference(
            world.integration, source_id="5001", target_id="INV-1", target_ref="Faktura 1"
        )
        assert plan(world, "source_id,target_id,target_ref\n5001,INV-1,\n").counts["unchanged"] == 1
        result = plan(world, "source_id,target_id,target_ref\n5001,INV-1,Faktura 1b\n")
        assert result.counts["changed"] == 1

    def test_an_unlinked_source_with_an_empty_target_is_unchanged(self, world):
        make_reference(world.integration, source_id="5001")
        assert plan(world, "source_id,target_id\n5001,\n").counts["unchanged"] == 1


class TestApply:
    TEXT = (
        "source_id,target_id,source_ref,target_ref\n"
        "5001,INV-1,,\n"  # unchanged
        "5002,INV-20,,Faktura 20\n"  # change
        "5003,INV-3,#3,\n"  # new link on a known source, with a new source ref
        "5004,INV-4,#4,Faktura 4\n"  # new record
        "5005,INV-TAKEN,,\n"  # rejected
    )

    @pytest.fixture
    def existing(self, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")
        make_reference(world.integration, source_id="5002", target_id="INV-2")
        make_reference(world.integration, source_id="5003")
        make_reference(world.integration, source_id="9000", target_id="INV-TAKEN")

    def test_dry_run_counts_equal_what_apply_writes(self, world, existing):
        dry = plan(world, self.TEXT).counts
        records_before = Record.objects.count()

        result = apply(world, self.TEXT, filename="orders.csv")

        assert result.counts == dry
        batch = result.batch
        assert batch.kind == "import"
        assert batch.row_count == dry["new"] + dry["changed"] == 3
        assert Record.objects.count() == records_before + 1
        added = BatchChange.objects.filter(batch=batch, change="added")
        removed = BatchChange.objects.filter(batch=batch, change="removed")
        # new record: source + target; 5003: new source ref + target; 5002: new target
        assert added.count() == 5
        assert sorted(removed.values_list("remote_id", flat=True)) == ["5003", "INV-2"]
        assert references(world) == {
            "5001": "INV-1",
            "5002": "INV-20",
            "5003": "INV-3",
            "5004": "INV-4",
            "9000": "INV-TAKEN",
        }
        assert RemoteId.objects.get(remote_id="5003").remote_ref == "#3"
        assert RemoteId.objects.get(remote_id="INV-20").remote_ref == "Faktura 20"
        entry = AuditEntry.objects.get()
        assert (entry.action, entry.actor, entry.batch) == ("import", "user/anna", batch)
        assert entry.after == {"new": 2, "changed": 1, "unchanged": 1, "rejected": 1}
        assert entry.summary == (
            "Imported 3 order references from orders.csv: 2 new, 1 changed, 1 unchanged, 1 rejected"
        )
        touched = Record.objects.get(remote_ids__remote_id="5002")
        assert touched.last_modified_by == "user/anna"

    def test_restore_undoes_the_import_and_removes_records_it_created(self, world, existing):
        before = references(world)
        records_before = Record.objects.count()
        result = apply(world, self.TEXT)

        restore_batch(result.batch, world.actor)

        assert references(world) == before
        assert Record.objects.count() == records_before
        assert RemoteId.objects.get(remote_id="5003").remote_ref == ""

    def test_an_id_taken_by_someone_else_while_applying_imports_nothing(
        self, world, existing, monkeypatch
    ):
        before = references(world)
        real_plan = changes.ChangeSet.plan

        def plan_then_someone_links_inv_4(change_set):
            planned = real_plan(change_set)
            if not RemoteId.objects.filter(remote_id="7777").exists():
                make_reference(world.integration, source_id="7777", target_id="INV-4")
            return planned

        monkeypatch.setattr(changes.ChangeSet, "plan", plan_then_someone_links_inv_4)

        with pytest.raises(DomainError) as error:
            apply(world, self.TEXT)

        assert error.value.code == "conflict"
        assert references(world) == before
        assert not Batch.objects.exists()

    def test_importing_the_same_file_again_is_all_unchanged(self, world, existing):
        apply(world, self.TEXT)
        again = plan(world, self.TEXT).counts
        assert again == {"new": 0, "changed": 0, "unchanged": 4, "rejected": 1}

    def test_a_large_file_is_written_set_based(self, world, django_assert_max_num_queries):
        rows = "\n".join(f"{5_000_000 + i},INV-{i}" for i in range(5000))
        text = f"source_id,target_id\n{rows}\n"

        # Multi-row INSERTs and IN (...) lists: SQLite caps the bound parameters per
        # statement (hence ~200 statements there), PostgreSQL takes 2,000 rows per INSERT.
        with django_assert_max_num_queries(250):
            result = apply(world, text)

        assert result.counts["new"] == 5000
        assert RemoteId.objects.filter(connection=world.erp).count() == 5000

"""manage.py import_references: the same plan and apply from the shell."""

import pytest
from django.core.management import CommandError, call_command

from records.models import Batch, RemoteId
from tests.factories import make_reference

pytestmark = pytest.mark.django_db


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("source_id;target_id\n5001;INV-1\n5002;INV-2\n;INV-3\n", encoding="utf-8-sig")
    return path


def run(world, path, *extra):
    out, err = [], []

    class Sink:
        def __init__(self, lines):
            self.lines = lines

        def write(self, text):
            self.lines.append(text)

        def flush(self):
            pass

    call_command(
        "import_references",
        str(path),
        "--tenant=acme",
        f"--integration={world.integration.pk}",
        "--entity=orders",
        *extra,
        stdout=Sink(out),
        stderr=Sink(err),
    )
    return "".join(out), "".join(err)


def test_dry_run_prints_the_counts_and_rejected_lines_and_writes_nothing(world, csv_file):
    make_reference(world.integration, source_id="5001", target_id="INV-1")

    out, _ = run(world, csv_file, "--dry-run")

    assert "1 new, 0 changed, 1 unchanged, 1 rejected." in out
    assert "line 4: Shopify id is required." in out
    assert "Dry run: nothing was written." in out
    assert not RemoteId.objects.filter(remote_id="INV-2").exists()


def test_import_writes_one_batch_with_a_progress_bar(world, csv_file):
    out, err = run(world, csv_file, "--as-user=anna")

    batch = Batch.objects.get()
    assert batch.actor == "user/anna" and batch.row_count == 2
    assert f"Imported 2 references as batch {batch.pk}" in out
    assert "[##############################] 100%" in err


def test_a_bad_file_or_an_unknown_integration_is_a_clear_error(world, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes("source_id,target_id\n5001,Fakturå\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8 text"):
        run(world, bad)
    with pytest.raises(CommandError, match="has no integration"):
        call_command(
            "import_references",
            str(bad),
            "--tenant=acme",
            f"--integration={world.other_integration.pk}",
            "--entity=orders",
        )
    assert not Batch.objects.exists()

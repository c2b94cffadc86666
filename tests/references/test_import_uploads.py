"""Uploaded imports in bounded memory: the file streams into lines, the plan runs in chunks (a
job when large) with each line's outcome stored, the preview pages through them, the lines go
once applied, and what nobody finished is purged."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from records.models import Job, RemoteId
from references import import_uploads
from references.imports import plan_text
from references.models import ImportLine, ImportUpload, ReconcileLine, ReconcileUpload
from tests.factories import make_reference
from tests.workers import run_worker

pytestmark = pytest.mark.django_db


def url(world, name="import"):
    kwargs = {"tenant_slug": "acme", "integration_id": world.integration.pk, "entity": "orders"}
    return reverse(f"references:{name}", kwargs=kwargs)


def upload(client, world, text, name="orders.csv"):
    return client.post(url(world), {"file": SimpleUploadedFile(name, text.encode())})


# Every rule that compares lines with each other, and lines that stand alone between them.
TANGLED = """source_id,target_id,source_ref,target_ref
5001,INV-1,,
5002,INV-2,#2,
5002,INV-2,#2,
5003,INV-3,,
5003,INV-33,,
5004,INV-4,,
5005,INV-4,,
5006,INV-60,,
5007,INV-70,,
5008,INV-80,,
5009,INV-90,,F-90
S-A,INV-B1,,
S-B,INV-B2,,
S-C,INV-C1,,
,INV-X,,
5010,INV-100,
5011
5012,INV-12,,
5013,INV-12x\x01,,
"""


def test_a_plan_in_chunks_gives_each_line_the_outcome_of_the_whole_file(
    admin_client, world, monkeypatch
):
    make_reference(world.integration, source_id="5006", target_id="INV-6")
    make_reference(world.integration, source_id="5007", target_id="INV-60")  # 5006 takes it
    make_reference(world.integration, source_id="5008", target_id="INV-8")
    make_reference(world.integration, source_id="5099", target_id="INV-80")  # held, stays
    make_reference(world.integration, source_id="S-B", target_id="INV-B1")  # S-A takes it
    make_reference(world.integration, source_id="S-C", target_id="INV-B2")  # S-B takes it
    make_reference(world.integration, source_id="5012", target_id="INV-12")
    whole = plan_text(world.integration, "order", TANGLED).rows
    monkeypatch.setattr(import_uploads, "PLAN_CHUNK", 2)

    upload(admin_client, world, TANGLED)

    stored = ImportLine.objects.order_by("line")
    assert [(line.line, line.kind, line.reason) for line in stored] == [
        (row.line, row.kind, row.reason) for row in whole
    ]
    assert {row.kind for row in whole} == {"new", "changed", "unchanged", "rejected"}
    assert sum(line.entangled for line in stored) >= 10  # the pairs above, planned together


@pytest.mark.django_db(transaction=True)
def test_a_large_file_is_checked_by_a_job_and_the_preview_shows_when_it_is_done(
    admin_client, world, settings
):
    settings.REFDESK_PLAN_JOB_THRESHOLD = 3
    make_reference(world.integration, source_id="5001", target_id="INV-1")
    rows = "".join(f"60{i:02},INV-60{i:02}\n" for i in range(20))

    location = upload(admin_client, world, f"source_id,target_id\n5001,INV-1\n,X\n{rows}")[
        "Location"
    ]
    checking = admin_client.get(location)

    job = Job.objects.get()
    assert (job.kind, job.state, job.total) == ("import_plan", "queued", 22)
    assert "Checking orders.csv" in checking.content.decode()
    assert "Import 20 references" not in checking.content.decode()
    token = checking.context["upload"].token
    assert admin_client.post(url(world, "import-apply"), {"upload": token}).status_code == 302
    assert not RemoteId.objects.filter(remote_id="INV-6000").exists()  # not before the plan

    run_worker()
    preview = admin_client.get(location)

    assert preview.context["counts"] == {"new": 20, "changed": 0, "unchanged": 1, "rejected": 1}
    assert "Import 20 references" in preview.content.decode()
    job.refresh_from_db()
    assert (job.state, job.result) == ("done", {"new": 20, "unchanged": 1, "rejected": 1})


def test_the_preview_pages_through_the_stored_outcomes(admin_client, world):
    rows = "".join(f"{7000 + i},INV-{7000 + i}\n" for i in range(120))
    location = upload(admin_client, world, f"source_id,target_id\n{rows}")["Location"]

    first = admin_client.get(location)
    shown = [row.line for row in first.context["new"]]
    assert shown == list(range(2, 52))
    assert "… and 70 more new links." in first.content.decode()
    second = admin_client.get(first.context["sections"]["new"]["next_url"])
    assert [row.line for row in second.context["new"]] == list(range(52, 102))
    assert second.context["counts"]["new"] == 120


@pytest.mark.parametrize("after", ["x", "-1", "9" * 40])
def test_a_bad_page_start_shows_the_first_page(admin_client, world, after):
    location = upload(admin_client, world, "source_id,target_id\n5001,INV-1\n")["Location"]

    response = admin_client.get(f"{location}&show=new&after={after}")

    assert response.status_code == 200
    assert [row.line for row in response.context["new"]] == [2]


def test_the_lines_are_gone_once_applied_and_the_result_stays(admin_client, world):
    location = upload(admin_client, world, "source_id,target_id\n5001,INV-1\n5002,INV-2\n")[
        "Location"
    ]
    token = ImportUpload.objects.get().token
    assert ImportLine.objects.count() == 2

    admin_client.post(url(world, "import-apply"), {"upload": token})

    assert not ImportLine.objects.exists()
    assert "Imported orders.csv" in admin_client.get(location).content.decode()


def test_a_bad_line_deep_in_the_file_keeps_nothing(admin_client, world):
    rows = "".join(f"{7000 + i},INV-{7000 + i}\n" for i in range(3000))

    response = upload(admin_client, world, f"source_id,target_id\n{rows}5001;INV-1\n")

    assert response.status_code == 422
    assert "Line 3002 is separated by &#x27;;&#x27;" in response.content.decode()
    assert not ImportUpload.objects.exists() and not ImportLine.objects.exists()


def test_every_line_row_carries_its_tenant(admin_client, world):
    upload(admin_client, world, "source_id,target_id\n5001,INV-1\n")
    admin_client.post(
        url(world, "reconcile"),
        {"file": SimpleUploadedFile("fortnox.csv", b"Id,Ref\nINV-1,F-1\n"), "side": "target"},
    )

    assert set(ImportLine.objects.values_list("tenant", flat=True)) == {world.tenant.pk}
    assert set(ReconcileLine.objects.values_list("tenant", flat=True)) == {world.tenant.pk}


def test_purge_uploads_deletes_what_nobody_finished_after_a_day(admin_client, world):
    upload(admin_client, world, "source_id,target_id\n5001,INV-1\n", name="old.csv")
    upload(admin_client, world, "source_id,target_id\n5002,INV-2\n", name="busy.csv")
    upload(admin_client, world, "source_id,target_id\n5003,INV-3\n", name="new.csv")
    admin_client.post(
        url(world, "reconcile"),
        {"file": SimpleUploadedFile("old-export.csv", b"Id\nINV-1\n"), "side": "target"},
    )
    a_day_ago = timezone.now() - timedelta(days=1, minutes=1)
    ImportUpload.objects.exclude(filename="new.csv").update(created_at=a_day_ago)
    ReconcileUpload.objects.update(created_at=a_day_ago)
    busy = ImportUpload.objects.get(filename="busy.csv")
    busy.job = Job.objects.create(tenant=world.tenant, kind="import", state=Job.State.RUNNING)
    busy.save()

    call_command("purge_uploads")

    assert set(ImportUpload.objects.values_list("filename", flat=True)) == {"busy.csv", "new.csv"}
    assert ImportLine.objects.count() == 2
    assert not ReconcileUpload.objects.exists() and not ReconcileLine.objects.exists()

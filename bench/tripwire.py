"""`make tripwire`: every bulk path at 200,000 references, each within a generous bound.

A path that is linear at 5,000 rows in the tests can be quadratic at 250,000 (a correlated
probe the planner runs per row when the statistics inside a long transaction are stale): the
tests never see it, and a person waits forever. This loads TRIPWIRE_N references with the
bench loader into its own database and runs, through the engine and the job code (the
function a worker runs, in this process):

    delete-all of the biggest tab, then its restore        (jobs)
    lose 5,000 links in one change set, then the Health fix that puts them back (job)
    an import of 20,000 lines                              (job)
    the unlinked filter, page 1,000 by number              (the References view, over HTTP
                                                            through Django's test client)
    manage.py recount --check                              (the kept counts are exact)

Each step must finish within TRIPWIRE_BOUND seconds (60): every statement runs with that
`statement_timeout`, so a per-row-squared path fails its step in a minute instead of running
for hours. A tripwire, not a benchmark: nothing is asserted but the bound and the outcome;
`make bench` measures. Exit code 1 if any step fails.

    make tripwire                                 # PostgreSQL on 127.0.0.1 (as make test)
    TRIPWIRE_N=50000 make tripwire                # smaller
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable

os.environ.setdefault("BENCH_N", os.environ.get("TRIPWIRE_N", "200000"))
os.environ.setdefault("BENCH_DB", "refdesk_tripwire")

from bench import run as bench  # noqa: E402 (BENCH_N and BENCH_DB first)

N = bench.N
BOUND = float(os.environ.get("TRIPWIRE_BOUND", "60"))
IMPORT_LINES = 20_000
LOST_LINKS = 5_000


def log(message: str) -> None:
    print(f"[tripwire {time.strftime('%H:%M:%SZ', time.gmtime())}] {message}", flush=True)


class StepFailed(Exception):
    pass


def run_job(kind: str, world, record_type: str, description: str, **params) -> object:
    """Start a job as the pages do and run it as a worker would (records.jobs.execute)."""
    from django.db import transaction

    from records import jobs
    from records.audit import Actor
    from records.models import Job

    with transaction.atomic():
        job = jobs.start_job(
            kind,
            tenant=world.tenant,
            actor=Actor.for_user(world.user),
            description=description,
            integration=world.main,
            record_type=record_type,
            params=params,
        )
    jobs.execute(job.pk, job.tenant_id)
    job = Job.objects.get(pk=job.pk)
    if job.state != Job.State.DONE:
        raise StepFailed(f"job {kind} ended {job.state}: {job.error}")
    return job


def biggest_tab(world) -> str:
    from records import counts

    kept = counts.kept_counts(world.main)
    return max(kept, key=lambda record_type: kept[record_type].linked)


def step_delete_all(world, state: dict) -> str:
    record_type = state["tab"] = biggest_tab(world)
    job = run_job("delete_all", world, record_type, f"Delete all {record_type} references")
    state["deleted"] = job.batch
    return f"{job.batch.row_count:,} {record_type} references removed"


def step_restore(world, state: dict) -> str:
    batch = state.get("deleted")
    if batch is None:
        raise StepFailed("nothing to restore: the delete-all failed")
    job = run_job("restore", world, batch.record_type, "Restore", batch_id=batch.pk)
    return f"{job.result.get('new', 0):,} put back"


def step_lose_links(world, state: dict) -> str:
    """One change set unlinking 5,000 references (as a selection delete would): the losses
    the Health fix below puts back."""
    from records import changes
    from records.audit import Actor
    from records.models import AuditEntry, Batch
    from references.queries import base_reference_rows
    from references.services import reference_change_set

    record_ids = list(
        base_reference_rows(world.main, "stock")
        .filter(target_remote_id__isnull=False)
        .order_by("record_id")
        .values_list("record_id", flat=True)[:LOST_LINKS]
    )
    change_set = reference_change_set(
        world.main,
        "stock",
        Actor.for_user(world.user),
        Batch.Kind.DELETE,
        [changes.Change(changes.Action.UNLINK, record_id=pk) for pk in record_ids],
        audit_action=AuditEntry.Action.DELETE,
    )
    applied = changes.apply(change_set)
    return f"{applied.counts[changes.REMOVED]:,} stock links removed in one batch"


def step_health_fix(world, state: dict) -> str:
    from references.findings.lost import LostLinks, lost_rows

    lost = lost_rows(world.main, "stock").count()
    job = run_job(
        "health_fix",
        world,
        "stock",
        "Put back lost links",
        finding=LostLinks.name,
        action="relink",
        rows=None,
    )
    put_back = job.result.get("changed", 0) + job.result.get("new", 0)
    return f"{lost:,} lost links found, {put_back:,} put back"


def step_import(world, state: dict) -> str:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from references import import_uploads
    from references.services import unlinked_source_rows

    unlinked = list(
        unlinked_source_rows(world.main, "customer").values_list("remote_id", flat=True)[
            : IMPORT_LINES // 10
        ]
    )
    lines = ["source_id,target_id"]
    lines += [f"{source},TRIP-C{i:07d}" for i, source in enumerate(unlinked)]
    lines += [f"TRIP-{i:07d},TRIP-T{i:07d}" for i in range(len(unlinked), IMPORT_LINES)]
    text = "\n".join(lines) + "\n"
    # As the upload view does: the file read into line rows, checked (planned) by a job, then
    # applied by a job.
    uploaded = SimpleUploadedFile("tripwire.csv", text.encode(), content_type="text/csv")
    upload = import_uploads.store(world.main, "customer", uploaded, world.user)
    run_job("import_plan", world, "customer", "Check an import", upload_id=upload.pk)
    job = run_job("import", world, "customer", "Import", upload_id=upload.pk)
    return f"{IMPORT_LINES:,} lines: {job.result}"


def _get(world, query: str) -> str:
    from django.test import Client

    client = Client()
    client.force_login(world.user)
    url = f"/t/{world.tenant.slug}/integrations/{world.main.pk}/references/orders/?{query}"
    response = client.get(url)
    if response.status_code != 200:
        raise StepFailed(f"GET {url}: HTTP {response.status_code}")
    return url


def step_unlinked_filter(world, state: dict) -> str:
    return _get(world, "linked=unlinked")


def step_deep_page(world, state: dict) -> str:
    return _get(world, "page=1000")


def step_recount(world, state: dict) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    try:
        call_command("recount", "--check", stdout=out)
    except SystemExit as exit_:
        raise StepFailed(f"kept counts differed:\n{out.getvalue()}") from exit_
    return out.getvalue().strip().splitlines()[-1]


STEPS: list[tuple[str, Callable]] = [
    ("delete-all of the biggest tab (job)", step_delete_all),
    ("restore of that delete-all (job)", step_restore),
    (f"unlink {LOST_LINKS:,} stock references (one change set)", step_lose_links),
    ("Health fix: put the lost links back (job)", step_health_fix),
    (f"import {IMPORT_LINES:,} customer lines (job)", step_import),
    ("References: the unlinked filter", step_unlinked_filter),
    ("References: page 1,000 by number", step_deep_page),
    ("recount --check", step_recount),
]


def main() -> int:
    started = time.perf_counter()
    bench.create_database()
    bench.setup_django()
    os.environ["ALLOWED_HOSTS"] = "testserver"
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from bench.load import ensure_data, forget_loaded

    settings.ALLOWED_HOSTS = ["testserver"]
    log(f"database {bench.DB}: migrate, load {N:,} references")
    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    forget_loaded()  # every run starts from the same data: the steps below write
    world = ensure_data(N, log)
    with connection.cursor() as cursor:
        # Every statement of every step: a per-row-squared one fails here, not in an hour.
        cursor.execute("SET statement_timeout = %s", [f"{int(BOUND * 1000)}ms"])
    state: dict = {}
    failed = []
    for label, step in STEPS:
        t0 = time.perf_counter()
        try:
            outcome = step(world, state)
        except Exception as error:  # noqa: BLE001 - every failure is reported, then exit 1
            seconds = time.perf_counter() - t0
            detail = str(error) if isinstance(error, StepFailed) else traceback.format_exc()
            log(f"FAILED {label}: {seconds:.1f} s: {detail}")
            failed.append(label)
            continue
        seconds = time.perf_counter() - t0
        over = seconds > BOUND
        log(f"{'FAILED' if over else 'ok'} {label}: {seconds:.1f} s ({outcome})")
        if over:
            failed.append(label)
    total = time.perf_counter() - started
    if failed:
        log(f"tripwire FAILED ({len(failed)} step(s) over {BOUND:.0f} s or broken), {total:.0f} s")
        return 1
    log(f"tripwire passed: every step within {BOUND:.0f} s, {total:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Big change sets as background jobs on Django's Tasks API, with progress the page can show.

    job = start_job("delete_all", tenant=..., actor=..., description=..., total=n, ...)
    # a worker (manage.py db_worker, or rqworker with TASKS_BACKEND=rq) runs run_job(job.pk)

A job kind is a function `(job, progress) -> (batch, counts)` that applies one change set
through records.changes; register it with `@job_kind("name")`. The apply and the job's "done"
are one transaction: a job that fails, or whose worker is killed, writes nothing. Two bulk jobs
on one tab (integration and entity type) never write at once: the engine's tab lock
(records/locks.py) makes the second wait, shown as queued. Jobs on other tabs run beside it,
and so do people's edits there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_tasks import task

from common.errors import DomainError

from . import changes, locks
from .audit import Actor
from .models import Batch, Job

logger = logging.getLogger(__name__)

JobRunner = Callable[[Job, changes.ProgressCallback], tuple[Batch | None, dict]]
JOB_KINDS: dict[str, JobRunner] = {}
# Progress within a phase is written at most this often (seconds); a new phase at once.
PROGRESS_INTERVAL = 0.5


def job_kind(name: str):
    def register(runner: JobRunner) -> JobRunner:
        JOB_KINDS[name] = runner
        return runner

    return register


def runs_as_job(size: int) -> bool:
    """Whether a change set of `size` rows is applied by a worker instead of the request."""
    return size > settings.REFDESK_JOB_THRESHOLD


def start_job(
    kind: str,
    *,
    tenant,
    actor: Actor,
    description: str,
    integration=None,
    record_type: str = "",
    params: dict | None = None,
    total: int = 0,
) -> Job:
    """Record the job and hand it to a worker once the current transaction commits."""
    if kind not in JOB_KINDS:
        raise ValueError(f"Unknown job kind {kind!r}")
    job = Job.objects.create(
        tenant=tenant,
        kind=kind,
        params=params or {},
        description=description[:300],
        actor=str(actor),
        integration=integration,
        record_type=record_type,
        total=total,
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    result = run_job.enqueue(job_id)
    Job.objects.filter(pk=job_id).update(task_id=str(result.id))


@task()
def run_job(job_id: int) -> str:
    """The task a worker runs: apply the job's change set; its state says how it went."""
    return execute(job_id)


def execute(job_id: int) -> str:
    job = Job.objects.select_related("tenant", "integration").filter(pk=job_id).first()
    if job is None or job.state != Job.State.QUEUED:
        return "skipped"  # already run (a task delivered twice runs once)
    progress = ProgressWriter(job)
    try:
        if connection.vendor != "postgresql":
            # SQLite runs one writer at a time: nothing to wait for, and nothing can be
            # written beside the transaction, so say "running" before it starts.
            progress.running()
        # A job waits for the locks of the tabs it writes as long as it takes (queued
        # meanwhile), where a person's request gives up after a few seconds.
        with locks.background(), transaction.atomic():
            batch, counts = JOB_KINDS[job.kind](job, progress)
            # In the same transaction as the writes: done exactly when they are committed.
            Job.objects.filter(pk=job.pk).update(
                state=Job.State.DONE,
                batch=batch,
                result=counts,
                phase="Done",
                done=max(progress.total, progress.done),
                total=max(progress.total, progress.done),
                finished_at=timezone.now(),
            )
    except DomainError as error:
        _fail(job, error.message)
        return "failed"
    except (OperationalError, InterfaceError) as error:
        if _statement_timed_out(error):
            logger.exception("Job %s (%s) ran into the statement timeout", job.pk, job.kind)
            _fail(
                job,
                "A step of this job took longer than the database allows (statement_timeout); "
                "nothing was written. Ask your administrator to look at the server log.",
            )
            return "failed"
        logger.exception("Job %s (%s) lost its database connection", job.pk, job.kind)
        connection.close()
        _fail(
            job,
            "The database connection was lost while the job ran (a restart?); nothing was "
            "written. Start it again.",
        )
        return "failed"
    except Exception as error:
        logger.exception("Job %s (%s) failed", job.pk, job.kind)
        _fail(
            job,
            f"The job stopped on an unexpected error ({type(error).__name__}); nothing was "
            "written. Try again, or ask your administrator to look at the server log.",
        )
        return "failed"
    finally:
        progress.close()
    return "done"


def _statement_timed_out(error: Exception) -> bool:
    """PostgreSQL cancelled a statement (SQLSTATE 57014): the connection is still fine."""
    return getattr(error.__cause__, "sqlstate", None) == "57014"


def _fail(job: Job, message: str, attempts: int = 10) -> None:
    """Say the job failed. Its writes are already rolled back; when the database itself went
    away (a restart), wait for it to come back rather than leave the job "running"."""
    for attempt in range(attempts):
        try:
            Job.objects.filter(pk=job.pk).update(
                state=Job.State.FAILED, error=message, phase="", finished_at=timezone.now()
            )
            return
        except DatabaseError:
            connection.close()  # a broken connection: the next try opens a new one
            if attempt == attempts - 1:
                raise
            time.sleep(1)


class ProgressWriter:
    """The engine's progress callback for a job: rows done of total, and the phase.

    The job's writes are one long transaction whose rows nobody else sees until it commits,
    so progress goes through a second connection in autocommit (PostgreSQL). SQLite allows
    one writer at a time; there the numbers are kept and written when the transaction ends.
    """

    def __init__(self, job: Job):
        self.job_id = job.pk
        self.done = 0
        self.total = job.total
        self.phase = ""
        self._side = None
        self._last = 0.0
        self._started = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        new_phase = phase != self.phase
        self.phase, self.done = phase, done
        self.total = total or self.total
        now = time.monotonic()
        if self._started and not new_phase and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        self._write(
            state=Job.State.RUNNING,
            phase=phase[:100],
            done=done,
            total=self.total,
            heartbeat_at=timezone.now(),
            **({} if self._started else {"started_at": timezone.now()}),
        )
        self._started = True

    def running(self) -> None:
        self._write(state=Job.State.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now())
        self._started = True

    def _write(self, **fields) -> None:
        if not connection.in_atomic_block:
            Job.objects.filter(pk=self.job_id).update(**fields)
            return
        if connection.vendor != "postgresql":
            return
        if self._side is None:
            default = connections[DEFAULT_DB_ALIAS]
            self._side = type(default)(dict(default.settings_dict), alias="job-progress")
        table = connection.ops.quote_name(Job._meta.db_table)
        assignments = ", ".join(f"{connection.ops.quote_name(name)} = %s" for name in fields)
        with self._side.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {assignments} WHERE id = %s",  # noqa: S608 (our columns)
                [*fields.values(), self.job_id],
            )

    def close(self) -> None:
        if self._side is not None:
            self._side.close()


def _counts(applied: changes.Applied) -> dict:
    return {key: value for key, value in applied.counts.items() if value}


@job_kind("delete_all")
def _delete_all(job: Job, progress) -> tuple[Batch | None, dict]:
    change_set = changes.DeleteAll(
        integration=job.integration, record_type=job.record_type, actor=Actor.parse(job.actor)
    )
    applied = changes.apply(change_set, progress=progress)
    return applied.batch, _counts(applied)


@job_kind("restore")
def _restore(job: Job, progress) -> tuple[Batch | None, dict]:
    batch = Batch.objects.for_tenant(job.tenant).get(pk=job.params["batch_id"])
    applied = changes.apply(
        changes.Restore(batch=batch, actor=Actor.parse(job.actor)), progress=progress
    )
    return applied.batch, _counts(applied)


# --- reading -----------------------------------------------------------------------------------

ACTIVE = (Job.State.QUEUED, Job.State.RUNNING)
SHOWN_FOR = timedelta(hours=24)


def active_restore(batch: Batch) -> Job | None:
    return (
        Job.objects.for_tenant(batch.tenant)
        .filter(kind="restore", params__batch_id=batch.pk, state__in=ACTIVE)
        .first()
    )


def recent_jobs(tenant, integration, record_type: str, since=None):
    """A tab's jobs of the last day (or since `since`); `integration` may be an OuterRef."""
    return Job.objects.for_tenant(tenant).filter(
        integration=integration,
        record_type=record_type,
        created_at__gte=since or timezone.now() - SHOWN_FOR,
    )


def has_recent_jobs(tenant, record_type: str, since=None) -> Exists:
    """An annotation for an integration queryset: whether `jobs_to_show` can find anything,
    so a tab without jobs (nearly all of them) asks nothing more."""
    return Exists(recent_jobs(tenant, OuterRef("pk"), record_type, since))


def jobs_to_show(tenant, integration, record_type: str) -> list[Job]:
    """What a tab shows: its running and queued jobs, and its latest job if that one failed
    (its error is shown where the job was started, for a day)."""
    recent = list(recent_jobs(tenant, integration, record_type).order_by("-created_at", "-id")[:10])
    shown = [job for job in recent if job.is_active]
    if recent and recent[0].state == Job.State.FAILED:
        shown.append(recent[0])
    return shown

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
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from django_tasks.base import TaskResultStatus
from django_tasks.exceptions import TaskResultDoesNotExist

from common.citus.tables import fan_out_allowed
from common.errors import DomainError

from . import changes, locks
from .audit import Actor
from .models import Batch, Job

logger = logging.getLogger(__name__)

JobRunner = Callable[[Job, changes.ProgressCallback], tuple[Batch | None, dict]]
JOB_KINDS: dict[str, JobRunner] = {}
# Progress within a phase is written at most this often (seconds); a new phase at once.
PROGRESS_INTERVAL = 0.5
ACTIVE = (Job.State.QUEUED, Job.State.RUNNING)


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
    # robust: a queue that is down (Redis) must not turn the committed request into an
    # error; the job stays queued and unclaimed, and the sweeper (`sweep`) queues it again.
    transaction.on_commit(lambda: _enqueue(job.pk, job.tenant_id), robust=True)
    return job


def _enqueue(job_id: int, tenant_id: int) -> None:
    result = run_job.enqueue(job_id, tenant_id)
    _job_row(job_id, tenant_id).update(task_id=str(result.id))


def _job_row(job_id: int, tenant_id: int | None):
    """The job's row by (tenant, id), as every tenant-owned row is addressed (one shard on
    Citus). A task queued before tasks carried the tenant has none: found by id alone."""
    rows = Job.objects.filter(pk=job_id)
    return rows if tenant_id is None else rows.filter(tenant_id=tenant_id)


@task()
def run_job(job_id: int, tenant_id: int | None = None) -> str:
    """The task a worker runs: apply the job's change set; its state says how it went."""
    return execute(job_id, tenant_id)


# --- claiming: a job runs once ----------------------------------------------------------------


class JobTakenAway(Exception):
    """The job is no longer this worker's (the sweeper declared its worker dead): its writes
    must not commit."""


def worker_name() -> str:
    """`host:pid:token`: the host and pid tell the sweeper whether the worker still lives;
    the token tells this claim from any other of the same process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def claim(job_id: int, tenant_id: int | None = None) -> str | None:
    """Take a queued job for this worker, atomically: one UPDATE that only a queued job
    nobody has claimed passes. Returns the worker's name, or None when another delivery of
    the task (or a sweep) got there first. The job stays "queued" (it may wait for its tab's
    lock, and is shown so) until it starts writing."""
    worker = worker_name()
    claimed = (
        _job_row(job_id, tenant_id)
        .filter(state=Job.State.QUEUED, worker="")
        .update(worker=worker, heartbeat_at=timezone.now())
    )
    return worker if claimed else None


def execute(job_id: int, tenant_id: int | None = None) -> str:
    worker = claim(job_id, tenant_id)
    if worker is None:
        return "skipped"  # already run or running (a task delivered twice runs once)
    job = _job_row(job_id, tenant_id).select_related("tenant", "integration").get()
    progress = ProgressWriter(job, worker)
    try:
        with Heartbeat(job, worker):
            _apply(job, worker, progress)
    except JobTakenAway:
        logger.warning("Job %s was declared failed while it ran; nothing was written", job.pk)
        return "abandoned"
    except Exception as error:
        _fail(job, worker, *_failure(job, error))
        return "failed"
    finally:
        progress.close()
    return "done"


def _apply(job: Job, worker: str, progress: ProgressWriter) -> None:
    if connection.vendor != "postgresql":
        # SQLite runs one writer at a time: nothing to wait for, and nothing can be
        # written beside the transaction, so say "running" before it starts.
        progress.running()
    # A job waits for the locks of the tabs it writes as long as it takes (queued
    # meanwhile), where a person's request gives up after a few seconds.
    with locks.background(), transaction.atomic():
        batch, counts = JOB_KINDS[job.kind](job, progress)
        # In the same transaction as the writes: done exactly when they are committed, and
        # only if the job is still this worker's (else everything rolls back).
        finished = (
            _job_row(job.pk, job.tenant_id)
            .filter(worker=worker, state__in=ACTIVE)
            .update(
                state=Job.State.DONE,
                batch=batch,
                result=counts,
                phase="Done",
                done=max(progress.total, progress.done),
                total=max(progress.total, progress.done),
                finished_at=timezone.now(),
            )
        )
        if not finished:
            raise JobTakenAway


def _failure(job: Job, error: Exception) -> tuple[str, bool]:
    """What a failed job says, and whether running it again may succeed."""
    if isinstance(error, DomainError):
        return error.message, False
    if isinstance(error, OperationalError | InterfaceError) and _statement_timed_out(error):
        logger.exception("Job %s (%s) ran into the statement timeout", job.pk, job.kind)
        return (
            "A step of this job took longer than the database allows (statement_timeout); "
            "nothing was written. Ask your administrator to look at the server log."
        ), False
    if isinstance(error, OperationalError | InterfaceError):
        logger.exception("Job %s (%s) lost its database connection", job.pk, job.kind)
        connection.close()
        return (
            "The database connection was lost while the job ran (a restart?); nothing was "
            "written. Start it again."
        ), True
    logger.exception("Job %s (%s) failed", job.pk, job.kind)
    return (
        f"The job stopped on an unexpected error ({type(error).__name__}); nothing was "
        "written. Try again, or ask your administrator to look at the server log."
    ), False


def _statement_timed_out(error: Exception) -> bool:
    """PostgreSQL cancelled a statement (SQLSTATE 57014): the connection is still fine."""
    return getattr(error.__cause__, "sqlstate", None) == "57014"


def _fail(job: Job, worker: str, message: str, restartable: bool, attempts: int = 10) -> None:
    """Say the job failed (if it is still this worker's). Its writes are already rolled back;
    when the database itself went away (a restart), wait for it to come back rather than
    leave the job "running"."""
    for attempt in range(attempts):
        try:
            _job_row(job.pk, job.tenant_id).filter(worker=worker, state__in=ACTIVE).update(
                state=Job.State.FAILED,
                error=message,
                restartable=restartable,
                phase="",
                finished_at=timezone.now(),
            )
            return
        except DatabaseError:
            connection.close()  # a broken connection: the next try opens a new one
            if attempt == attempts - 1:
                raise
            time.sleep(1)


class Heartbeat:
    """While a job runs, say every `REFDESK_JOB_HEARTBEAT` seconds that its worker lives, from
    a thread with a connection of its own (PostgreSQL; the job's own connection is inside a
    transaction, often waiting for a lock). The sweeper takes a job whose heartbeat stopped
    for a worker that died. SQLite (one machine, one writer) goes by the worker's pid alone."""

    def __init__(self, job: Job, worker: str):
        self.job_id, self.tenant_id, self.worker = job.pk, job.tenant_id, worker
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if connection.vendor == "postgresql":
            self._thread = threading.Thread(target=self._beat, name=f"job-{self.job_id}-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.REFDESK_JOB_HEARTBEAT):
                try:
                    _job_row(self.job_id, self.tenant_id).filter(worker=self.worker).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    connections[DEFAULT_DB_ALIAS].close()  # try again with a new one
        finally:
            connections[DEFAULT_DB_ALIAS].close()  # this thread's own connection


# --- the sweeper: jobs nobody runs ------------------------------------------------------------

WORKER_DIED = (
    "Its worker stopped while it ran (killed, or its machine went away); nothing was written. "
    "It can be started again."
)


@dataclass
class Swept:
    requeued: list[int]
    failed: list[int]


def sweep() -> Swept:
    """Queue again the jobs whose task never reached a worker (its enqueue failed after the
    commit, or the process died first), and fail, restartable, those whose worker died.
    `manage.py jobs --requeue` runs it (once, or `--every` N seconds beside the workers)."""
    with fan_out_allowed():  # every tenant's jobs: one look, not one per tenant
        return Swept(requeued=_requeue_unclaimed(), failed=_fail_dead_workers())


def _requeue_unclaimed() -> list[int]:
    waited_enough = timezone.now() - timedelta(seconds=settings.REFDESK_JOB_REQUEUE_AFTER)
    unclaimed = Job.objects.filter(state=Job.State.QUEUED, worker="", created_at__lte=waited_enough)
    requeued = []
    for job_id, tenant_id, task_id in unclaimed.values_list("pk", "tenant_id", "task_id"):
        if _waiting_in_queue(task_id):
            continue  # workers are busy, not gone: another delivery would only wait beside it
        try:
            _enqueue(job_id, tenant_id)
        except Exception:
            logger.exception("Job %s could not be queued again", job_id)
            continue
        requeued.append(job_id)
    return requeued


def _waiting_in_queue(task_id: str) -> bool:
    if not task_id:
        return False  # its enqueue never finished
    try:
        return run_job.get_result(task_id).status == TaskResultStatus.READY
    except TaskResultDoesNotExist:
        return False


def _fail_dead_workers() -> list[int]:
    claimed = Job.objects.filter(state__in=ACTIVE).exclude(worker="")
    failed = []
    for job in claimed.only("pk", "tenant_id", "worker", "heartbeat_at"):
        if not _worker_died(job):
            continue
        if (
            _job_row(job.pk, job.tenant_id)
            .filter(worker=job.worker, state__in=ACTIVE)
            .update(
                state=Job.State.FAILED,
                error=WORKER_DIED,
                restartable=True,
                phase="",
                finished_at=timezone.now(),
            )
        ):
            failed.append(job.pk)
    return failed


def _worker_died(job: Job) -> bool:
    """Its process is gone (a worker on this host), or its heartbeat stopped (PostgreSQL, a
    worker anywhere)."""
    host, _, pid = job.worker.partition(":")
    pid = pid.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid)):
        return True
    if connection.vendor != "postgresql" or job.heartbeat_at is None:
        return False
    silent_for = timezone.now() - job.heartbeat_at
    return silent_for > timedelta(seconds=settings.REFDESK_JOB_WORKER_TIMEOUT)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Killed but not yet reaped (a forked work horse whose parent died too): dead."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def restart(job: Job) -> bool:
    """Queue a job that failed restartable again, as new; False if it is not one."""
    restarted = (
        _job_row(job.pk, job.tenant_id)
        .filter(state=Job.State.FAILED, restartable=True)
        .update(
            state=Job.State.QUEUED,
            worker="",
            restartable=False,
            error="",
            phase="",
            done=0,
            task_id="",
            started_at=None,
            heartbeat_at=None,
            finished_at=None,
        )
    )
    if restarted:
        transaction.on_commit(lambda: _enqueue(job.pk, job.tenant_id), robust=True)
    return bool(restarted)


class ProgressWriter:
    """The engine's progress callback for a job: rows done of total, and the phase.

    The job's writes are one long transaction whose rows nobody else sees until it commits,
    so progress goes through a second connection in autocommit (PostgreSQL). SQLite allows
    one writer at a time; there the numbers are kept and written when the transaction ends.
    """

    def __init__(self, job: Job, worker: str):
        self.job_id, self.tenant_id, self.worker = job.pk, job.tenant_id, worker
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
        # Only while the job is still this worker's: never over a sweep's "failed".
        if not connection.in_atomic_block:
            _job_row(self.job_id, self.tenant_id).filter(
                worker=self.worker, state__in=ACTIVE
            ).update(**fields)
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
                f"UPDATE {table} SET {assignments} WHERE tenant_id = %s AND id = %s "  # noqa: S608
                "AND worker = %s AND state IN ('queued', 'running')",
                [*fields.values(), self.tenant_id, self.job_id, self.worker],
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

"""Job kinds of the References pages (records.jobs runs them): the check (plan) and apply of
a large CSV import, the comparison and fix of a large reconcile export, a large Health fix (of
any registered finding) and a Health scan."""

from common.errors import DomainError
from records import changes
from records.audit import Actor
from records.jobs import job_kind
from records.models import Job

from . import findings, reconcile
from .findings import scans
from .import_uploads import KINDS, apply_upload, plan_upload
from .models import ImportUpload, ReconcileUpload


@job_kind("import_plan")
def plan_import_job(job: Job, progress):
    upload = _import_upload(job)
    counts = plan_upload(upload, progress)
    return None, {kind: counts[kind] for kind in KINDS if counts[kind]}


@job_kind("import")
def apply_import_job(job: Job, progress):
    result = apply_upload(_import_upload(job), Actor.parse(job.actor), progress=progress)
    return result.batch, {key: value for key, value in result.counts.items() if value}


def _import_upload(job: Job) -> ImportUpload:
    return _upload(
        ImportUpload,
        job,
        gone="The uploaded file is gone (uploads are kept for a day). Upload it again.",
    )


def _upload(model, job: Job, *, gone: str):
    """The job's upload (an import or a reconcile export), its integration's sides fetched;
    DomainError(`gone`) when it was purged meanwhile."""
    upload = (
        model.objects.for_tenant(job.tenant)
        .select_related("integration__source", "integration__target", "tenant")
        .filter(pk=job.params["upload_id"])
        .first()
    )
    if upload is None:
        raise DomainError(gone)
    return upload


@job_kind("reconcile_compare")
def compare_export_job(job: Job, progress):
    upload = _reconcile_upload(job)
    return None, reconcile.compare(upload, progress)


@job_kind("reconcile_apply")
def apply_reconcile_job(job: Job, progress):
    upload = _reconcile_upload(job)
    applied = changes.apply(
        reconcile.fix_change_set(
            upload,
            Actor.parse(job.actor),
            reconcile.FixChoice.from_form(dict(job.params.get("choice", [])), upload),
        ),
        progress=progress,
    )
    if applied.batch is not None:
        ReconcileUpload.objects.for_tenant(job.tenant).filter(pk=upload.pk).update(
            batch=applied.batch
        )
    return applied.batch, reconcile.fix_counts(applied.plan)


def _reconcile_upload(job: Job) -> ReconcileUpload:
    return _upload(
        ReconcileUpload,
        job,
        gone="The export is gone (reports are kept for a day). Upload it again.",
    )


@job_kind("health_fix")
def apply_health_fix_job(job: Job, progress):
    scope = findings.Scope(job.integration, job.record_type)
    finding = findings.finding_named(job.integration, job.record_type, job.params["finding"], scope)
    fix = finding.fix(job.params["action"])
    rows = finding.rows()
    if job.params.get("rows") is not None:  # None: every row of the finding
        rows = rows.filter(pk__in=job.params["rows"])
    rows = list(rows)
    if not rows:
        raise DomainError("These rows no longer need this fix. Nothing was changed.")
    change_set = finding.change_set(fix, rows, Actor.parse(job.actor))
    applied = finding.apply(fix, change_set, rows, progress=progress)
    return applied.batch, {key: value for key, value in applied.counts.items() if value}


@job_kind(scans.SCAN_JOB)
def scan_health_job(job: Job, progress):
    found = {}
    for record_type in job.params.get("record_types") or [job.record_type]:
        scanned = [f for f in findings.findings_of(job.integration, record_type) if f.scanned]
        for kept in scans.scan(scanned, progress):
            found[f"{record_type} {kept.finding}"] = kept.count
    return None, found

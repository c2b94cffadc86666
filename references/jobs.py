"""Job kinds of the References pages (records.jobs runs them): a large CSV import."""

from records.audit import Actor
from records.errors import DomainError
from records.jobs import job_kind
from records.models import Job

from . import imports
from .models import ImportUpload


@job_kind("import")
def apply_import_job(job: Job, progress):
    upload = ImportUpload.objects.for_tenant(job.tenant).filter(pk=job.params["upload_id"]).first()
    if upload is None:
        raise DomainError(
            "The uploaded file is gone (uploads are kept for a day). Upload it again."
        )
    result = imports.apply_import(
        job.integration,
        job.record_type,
        upload.text,
        Actor.parse(job.actor),
        filename=upload.filename,
        upload=upload,
        progress=progress,
    )
    return result.batch, {key: value for key, value in result.counts.items() if value}

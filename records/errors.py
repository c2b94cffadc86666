"""Errors about records: an id another record holds, a record changed since it was read.

The generic ones (DomainError, InvalidValue, NotAllowed) are in common/errors.py.
"""

from common.errors import DomainError


class Conflict(DomainError):
    """An id is already taken. `holder` is the record that holds it, to link to."""

    status = 409

    def __init__(self, message: str, *, field: str | None = None, holder=None):
        super().__init__(message, field=field, code="conflict")
        self.holder = holder


class StaleEdit(DomainError):
    """The record changed since the form was opened; `current` holds its values now."""

    status = 409

    def __init__(
        self, message: str, *, changed_by: str, changed_at, current: dict, current_version=None
    ):
        super().__init__(message, code="stale")
        self.changed_by = changed_by
        self.changed_at = changed_at
        self.current = current
        self.current_version = current_version


class VersionMismatch(DomainError):
    """An API write sent If-Match with a version the record no longer has."""

    status = 412

    def __init__(self, message: str, *, current_version: int):
        super().__init__(message, code="version_mismatch")
        self.current_version = current_version


class BulkChangeRunning(DomainError):
    """A bulk change (a delete-all, an import, a restore...) is writing the references this
    change needed, and a person should not wait for it: nothing was written. `job` is that
    change's background job when there is one, to link to its progress."""

    status = 409

    def __init__(self, record_type: str, job=None):
        if job is None:
            message = (
                f"A bulk change of {record_type} references is being written right now. "
                "Nothing was saved; try again in a moment."
            )
        else:
            from .history import display_name  # history reads the models, which read errors

            who = display_name(job.tenant_id, job.actor)
            doing = (
                f"is running ({job.percent}%)"
                if job.state == job.State.RUNNING
                else "is about to run"
            )
            message = (
                f"{job.description} by {who} {doing}. Nothing was saved; try again when it "
                "has finished."
            )
        super().__init__(message, code="bulk_change_running")
        self.job = job

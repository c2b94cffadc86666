"""Errors the domain services raise. Views turn them into field errors, the API into 4xx JSON."""


class DomainError(Exception):
    """A rule refused the change. `message` is written for the person who asked for it."""

    status = 422

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class InvalidValue(DomainError):
    """Input that can never be valid: empty id, control characters, a value of the wrong type."""


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


class NotAllowed(DomainError):
    """The actor may not make this change (e.g. a connection writing another's remote id)."""

    status = 403

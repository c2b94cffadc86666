"""The errors a domain rule raises, and the one JSON shape an error takes.

Views turn a DomainError into field errors, the API into 4xx JSON (`error_body`). Errors about
records themselves (an id another record holds, a stale version) are in records/errors.py.
"""


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


class NotAllowed(DomainError):
    """The actor may not make this change (e.g. a connection writing another's remote id)."""

    status = 403


class NotFound(DomainError):
    """What the request names does not exist (or is another tenant's: the same answer)."""

    status = 404

    def __init__(self, message: str, *, field: str | None = None, code: str = "not_found"):
        super().__init__(message, field=field, code=code)


def error_body(detail: str, code: str, errors=(), held_by=None) -> dict:
    """The API's one error shape; the database-outage 503 uses it too, so clients parse every
    error alike."""
    return {"detail": detail, "code": code, "errors": list(errors), "heldBy": held_by}

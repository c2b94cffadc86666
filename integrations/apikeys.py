"""API keys for API connections: random, shown once, stored as a SHA-256 digest.

A key is 32 random bytes from `secrets` (43 URL-safe characters), so a fast hash is enough:
nobody can guess it, and verifying it costs microseconds on every request. A slow password
hash (PBKDF2) is for human passwords; per API request it would cost hundreds of milliseconds.
Digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from django.db import transaction
from django.utils import timezone

from common.prepared import PreparedQuery

from .models import HEX32_PATTERN, Connection

KEY_BYTES = 32
# Compared against when the connection id is unknown, so both paths cost the same.
_NO_DIGEST = hashlib.sha256(b"refdesk: no such connection").hexdigest()


class NotAnApiConnection(Exception):
    """Only connections of an API connector have keys."""


def generate_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(key), stored_digest or _NO_DIGEST)


@transaction.atomic
def rotate_key(connection: Connection) -> str:
    """Give the connection a new key and return it: the only time it is ever seen.

    The old key stops working at once.
    """
    if not connection.connector.is_api:
        raise NotAnApiConnection(f"{connection} is not a connection of an API connector.")
    key = generate_key()
    connection.api_key_digest = digest(key)
    connection.api_key_rotated_at = timezone.now()
    connection.save(update_fields=["api_key_digest", "api_key_rotated_at"])
    return key


# Every API request asks this: compiled once per process (common.prepared).
_active_api_connection = PreparedQuery(
    lambda connection_id: Connection.objects.select_related("tenant", "connector").filter(
        connection_id=connection_id, active=True, connector__category="api"
    )[:1]
)


def authenticate(connection_id: str, key: str) -> Connection | None:
    """The active API connection that `key` belongs to, or None.

    One indexed lookup and one SHA-256: cheap enough for every request.
    """
    connection = None
    if re.fullmatch(HEX32_PATTERN, connection_id or ""):
        connection = _active_api_connection.first(connection_id=connection_id)
    stored = connection.api_key_digest if connection is not None else _NO_DIGEST
    if not key or not stored or not key_matches(key, stored):
        return None
    return connection

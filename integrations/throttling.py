"""Throttling of failed authentication: the log-in form, the admin log-in and the API's Basic auth.

Failures are counted over a sliding window in the database (shared by every app server):
- per identity and client address (someone mistyping, or guessing one account from one place),
- per identity from anywhere (one account guessed from many addresses),
- per client address (one address trying many accounts).
Log-in (human passwords, guessable): over any limit the attempt is refused before the
password is even checked, so a correct guess during a lockout does not help; a success clears
that identity's failures from that address (integrations/forms.py).

API (random 256-bit keys, not guessable): only failures are checked, so a wrong key past the
limit gets 429 instead of 401 while a right key always works (records/api.py) and a success
costs no query.

    lockout = throttling.check(scope, identity, request)
    if lockout: answer 429 with lockout.message and Retry-After: lockout.retry_after
    throttling.record_failure(scope, identity, request)
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from .models import AuthFailure

# Per scope: (window seconds, per identity+address, per identity, per address).
DEFAULT_LIMITS = {
    "login": (900, 5, 20, 30),
    "api": (900, 10, 50, 100),
}


@dataclass(frozen=True)
class Lockout:
    retry_after: int  # seconds

    @property
    def minutes(self) -> int:
        return max(1, -(-self.retry_after // 60))

    @property
    def message(self) -> str:
        unit = "minute" if self.minutes == 1 else "minutes"
        return (
            f"Too many failed attempts. For your account's safety, try again in "
            f"{self.minutes} {unit}."
        )


def _limits(scope: str) -> tuple[int, int, int, int]:
    return getattr(settings, "AUTH_THROTTLE_LIMITS", {}).get(scope) or DEFAULT_LIMITS[scope]


def _key(identity: str) -> str:
    return hashlib.sha256((identity or "").strip().lower().encode()).hexdigest()


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _address(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client's address. REMOTE_ADDR, unless it is one of REFDESK_TRUSTED_PROXIES: then
    X-Forwarded-For is read from the right (each proxy appends the address it was reached
    from) and the first entry that is not a trusted proxy is the client. Entries left of it
    were written by the client itself and are never read."""
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = _networks(tuple(getattr(settings, "REFDESK_TRUSTED_PROXIES", ())))
    if not proxies or remote is None:
        return remote

    def trusted(address) -> bool:
        return any(address in network for network in proxies)

    nearest = _address(remote)
    if nearest is None or not trusted(nearest):
        return remote
    for entry in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _address(entry)
        if address is None:
            break  # not an address: no proxy of ours wrote it; the last proxy is the client
        nearest = address
        if not trusted(address):
            break
    return str(nearest)


def check(scope: str, identity: str, request) -> Lockout | None:
    """A Lockout when this identity or address has failed too often recently, else None."""
    window, per_pair, per_identity, per_ip = _limits(scope)
    now = timezone.now()
    since = now - timedelta(seconds=window)
    key, ip = _key(identity), client_ip(request)
    counts = AuthFailure.objects.filter(scope=scope, created_at__gte=since).aggregate(
        pair=Count("pk", filter=Q(key=key, ip=ip)),
        identity=Count("pk", filter=Q(key=key)),
        address=Count("pk", filter=Q(ip=ip)),
    )
    over = [
        (counts["pair"], per_pair, Q(key=key, ip=ip)),
        (counts["identity"], per_identity, Q(key=key)),
        (counts["address"], per_ip, Q(ip=ip)),
    ]
    retry_after = 0
    for count, limit, match in over:
        if count >= limit:
            # Free again when enough of the oldest failures have left the window.
            times = list(
                AuthFailure.objects.filter(match, scope=scope, created_at__gte=since)
                .order_by("created_at")
                .values_list("created_at", flat=True)[: count - limit + 1]
            )
            free_at = times[-1] + timedelta(seconds=window)
            retry_after = max(retry_after, int((free_at - now).total_seconds()) + 1)
    return Lockout(retry_after) if retry_after else None


def record_failure(scope: str, identity: str, request) -> None:
    window = _limits(scope)[0]
    now = timezone.now()
    AuthFailure.objects.filter(scope=scope, created_at__lt=now - timedelta(seconds=window)).delete()
    AuthFailure.objects.create(
        scope=scope, key=_key(identity), ip=client_ip(request), created_at=now
    )


def record_success(scope: str, identity: str, request) -> None:
    AuthFailure.objects.filter(scope=scope, key=_key(identity), ip=client_ip(request)).delete()

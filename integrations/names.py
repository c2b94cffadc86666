"""Connection names by hex id, the way history and the By column name who made a change.

Nearly every page names a connection somewhere, so the names of a tenant's connections are
kept in Django's cache for a minute instead of being read on every request. Saving or
deleting a connection forgets them at once in this process (and everywhere, with a shared
cache such as Redis); with the per-process default cache another worker may show an old
name for up to CACHE_SECONDS, which is only a label.
"""

from django.core.cache import cache

from .models import Connection

CACHE_SECONDS = 60


def _key(tenant_id: int) -> str:
    return f"refdesk:connection-names:{tenant_id}"


def connection_names(tenant) -> dict[str, str]:
    names = cache.get(_key(tenant.pk))
    if names is None:
        names = dict(Connection.objects.for_tenant(tenant).values_list("connection_id", "name"))
        cache.set(_key(tenant.pk), names, CACHE_SECONDS)
    return names


def forget_connection_names(sender, instance, **kwargs) -> None:
    cache.delete(_key(instance.tenant_id))

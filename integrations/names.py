"""Connection names by hex id, and people's names by login: the way history, the By column,
banners and the Jobs list name who made a change.

Nearly every page names a connection somewhere, so the names of a tenant's connections are
kept in Django's cache for a minute instead of being read on every request. Saving or
deleting a connection forgets them at once in this process (and everywhere, with a shared
cache such as Redis); with the per-process default cache another worker may show an old
name for up to CACHE_SECONDS, which is only a label.
"""

from django.core.cache import cache

from .models import Connection, Membership

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


def _people_key(tenant_id: int) -> str:
    return f"refdesk:people-names:{tenant_id}"


def people_names(tenant) -> dict[str, str]:
    """The full names of the tenant's members by login ("anna": "Anna Admin"); a member
    without a name is left out (people are then named by their login)."""
    names = cache.get(_people_key(tenant.pk))
    if names is None:
        names = {
            login: f"{first} {last}".strip()
            for login, first, last in Membership.objects.for_tenant(tenant).values_list(
                "user__username", "user__first_name", "user__last_name"
            )
            if (first or last)
        }
        cache.set(_people_key(tenant.pk), names, CACHE_SECONDS)
    return names


def forget_people_names(sender, instance, **kwargs) -> None:
    """A user's name changed (or a membership came or went): forget the names of the tenants
    it is a member of."""
    update_fields = kwargs.get("update_fields")
    if update_fields and not {"first_name", "last_name"} & set(update_fields):
        return  # a log-in stamping last_login
    if isinstance(instance, Membership):
        cache.delete(_people_key(instance.tenant_id))
        return
    # Every tenant the person belongs to (their names are cached per tenant).
    tenant_ids = instance.memberships.values_list("tenant_id", flat=True)
    cache.delete_many([_people_key(tenant_id) for tenant_id in tenant_ids])

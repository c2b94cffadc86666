from django import template

from integrations import names as integrations_names
from records import history
from records.validation import format_custom_value

register = template.Library()


@register.filter
def custom_value(item) -> str:
    """A custom data value as people read it: JSON pretty-printed, others as typed."""
    return format_custom_value(item.type, item.value)


def connection_names(context) -> dict[str, str]:
    """Connection names by hex id and people's names by `user/<login>` (integrations.names
    keeps both), once per request."""
    request = context.get("request")
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        return {}
    names = getattr(request, "_actor_names", None)
    if names is None:
        people = integrations_names.people_names(tenant)
        names = request._actor_names = {
            **integrations_names.connection_names(tenant),
            **{f"user/{login}": name for login, name in people.items()},
        }
    return names


@register.simple_tag(takes_context=True)
def actor_name(context, actor: str) -> str:
    """Who made a change, as people know them: "Warehouse API" for `connection/<hex id>`,
    "Anna Admin" for `user/anna` (or "anna" when she has no name), "sync (system)" for
    `system/sync`. The one way a template names a person or connection; the `{type}/{id}`
    form stays on hover (the template puts it in `title`)."""
    names = connection_names(context) if (actor or "").partition("/")[0] in NAMED else {}
    return history.actor_label(actor, names)


# Actors whose names are looked up (the system's are written as they are).
NAMED = ("connection", "user")


@register.simple_tag(takes_context=True)
def history_sentence(context, entry):
    """An audit entry's change as a sentence with its values marked up (records.history)."""
    return history.sentence(entry, connection_names(context))

import json

from django import template

from records.validation import format_custom_value

register = template.Library()


@register.filter
def custom_value(item) -> str:
    """A custom data value as people read it: JSON pretty-printed, others as typed."""
    return format_custom_value(item.type, item.value)


@register.filter
def pretty_json(value) -> str:
    if value is None:
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.simple_tag(takes_context=True)
def actor_name(context, actor: str) -> str:
    """Who made a change, as people know them: "Warehouse API" for `connection/<hex id>`,
    "anna" for `user/anna`, "sync (system)" for `system/sync`. The `{type}/{id}` form stays
    on hover (the template puts it in `title`). Connection names are read once per request."""
    kind, _, ident = (actor or "").partition("/")
    if kind == "connection":
        request = context.get("request")
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return actor
        names = getattr(request, "_connection_names", None)
        if names is None:
            from integrations.models import Connection

            names = dict(Connection.objects.for_tenant(tenant).values_list("connection_id", "name"))
            request._connection_names = names
        return names.get(ident, actor)
    if kind == "user":
        return ident
    if kind == "system":
        return f"{ident} (system)"
    return actor

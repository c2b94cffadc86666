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

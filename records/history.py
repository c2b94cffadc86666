"""Audit entries as sentences people read: "Fortnox id 90166 → 90167", not raw JSON.

One place turns an entry's before/after snapshots into a sentence with the changed values
marked up (`.val.before` and `.val.after` in the CSS), for the record page's history and the
References row history alike. Names come from the entry's integration and connection, and
people from `actor_label` ("Warehouse API" for `connection/<hex id>`).
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from integrations.models import Tenant
from integrations.names import connection_names, people_names

from .models import AuditEntry, Batch

Action = AuditEntry.Action

# Data fields shown by name in an "Updated record" sentence; the rest are counted.
DATA_FIELDS_SHOWN = 3


def actor_label(actor: str, names: dict[str, str]) -> str:
    """Who made a change, as people know them: a connection by its name (`names` by hex id),
    a person by their name ("Anna Admin"; `names` by `user/<login>`) or else their login; the
    `{type}/{id}` form stays for the hover title."""
    kind, _, ident = (actor or "").partition("/")
    if kind == "connection":
        return names.get(ident, actor)
    if kind == "user":
        return names.get(actor) or ident
    if kind == "system":
        return f"{ident} (system)"
    return actor


def display_name(tenant_id: int, actor: str) -> str:
    """`actor_label` for a sentence built outside a template (an error, a toast): the names
    of the tenant's connections and people come from integrations.names (cached)."""
    kind = (actor or "").partition("/")[0]
    if kind not in ("connection", "user"):
        return actor_label(actor, {})
    tenant = Tenant(pk=tenant_id)
    names = dict(connection_names(tenant))
    names.update({f"user/{login}": name for login, name in people_names(tenant).items()})
    return actor_label(actor, names)


def val(text, kind: str = "") -> SafeString:
    """One value in a sentence; `kind` "before" or "after" colours what changed."""
    if text in (None, ""):
        return mark_safe('<span class="val none">none</span>')  # noqa: S308 - constant
    return format_html('<span class="val{}">{}</span>', f" {kind}" if kind else "", text)


def join(parts: list) -> SafeString:
    return mark_safe("; ".join(str(part) for part in parts))  # noqa: S308 - parts are escaped


def change(label: str, before, after) -> SafeString:
    return format_html("{} {} → {}", label, val(before, "before"), val(after, "after"))


def with_ref(remote_id, ref, kind: str = "") -> SafeString:
    if ref:
        return format_html("{} ({})", val(remote_id, kind), ref)
    return val(remote_id, kind)


def is_reference(snapshot) -> bool:
    return isinstance(snapshot, dict) and ("source_id" in snapshot or "target_id" in snapshot)


def reference_sentence(before, after, source: str, target: str) -> SafeString:
    """A reference's change: linked, unlinked, or which of its ids and refs changed."""
    before = before if is_reference(before) else {}
    after = after if is_reference(after) else {}
    if after.get("target_id") and not before.get("target_id"):
        return format_html(
            "Linked {} {} to {} {}",
            source,
            with_ref(after.get("source_id"), after.get("source_ref")),
            target,
            with_ref(after.get("target_id"), after.get("target_ref"), "after"),
        )
    if before.get("target_id") and not after.get("target_id"):
        return format_html(
            "Unlinked {} {} from {} {}",
            source,
            with_ref(before.get("source_id"), before.get("source_ref")),
            target,
            with_ref(before.get("target_id"), before.get("target_ref"), "before"),
        )
    parts = []
    for side, name in (("source", source), ("target", target)):
        for field, label in (("id", "id"), ("ref", "ref")):
            key = f"{side}_{field}"
            if (before.get(key) or "") != (after.get(key) or ""):
                parts.append(change(f"{name} {label}", before.get(key), after.get(key)))
    return join(parts) if parts else mark_safe("No change")  # noqa: S308 - constant


def remote_id_sentence(before, after, connection: str) -> SafeString:
    """An API connection's own id (or one set by a fix): set, changed or removed."""
    if not before and after:
        return format_html(
            "Set {} id {}", connection, with_ref(after.get("remote_id"), after.get("remote_ref"))
        )
    if before and not after:
        return format_html(
            "Removed {} id {}",
            connection,
            with_ref(before.get("remote_id"), before.get("remote_ref"), "before"),
        )
    before, after = before or {}, after or {}
    parts = []
    if before.get("remote_id") != after.get("remote_id"):
        parts.append(change(f"{connection} id", before.get("remote_id"), after.get("remote_id")))
    if (before.get("remote_ref") or "") != (after.get("remote_ref") or ""):
        parts.append(
            change(
                format_html("{} ref of {}", connection, after.get("remote_id")),
                before.get("remote_ref"),
                after.get("remote_ref"),
            )
        )
    return join(parts) if parts else mark_safe("No change")  # noqa: S308 - constant


def custom_data_sentence(before, after) -> SafeString:
    key = (after or before or {}).get("key", "")
    if before and not after:
        return format_html("Deleted {} (was {})", key, val(before.get("value"), "before"))
    if not before:
        return format_html("Set {} to {}", key, val((after or {}).get("value"), "after"))
    return change(key, before.get("value"), after.get("value"))


def data_sentence(before, after) -> SafeString:
    old = (before or {}).get("data") or {}
    new = (after or {}).get("data") or {}
    if not before:
        count = len(new)
        return format_html("Created with {} data field{}", count, "" if count == 1 else "s")
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    if not changed:
        return mark_safe("No change to the data")  # noqa: S308 - constant
    parts = [change(key, _short(old.get(key)), _short(new.get(key))) for key in changed]
    shown = parts[:DATA_FIELDS_SHOWN]
    more = len(parts) - len(shown)
    if more:
        shown.append(format_html("and {} more field{}", more, "" if more == 1 else "s"))
    return join(shown)


def _short(value) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def ago(when) -> str:
    """ "just now" under a minute, else "3 minutes ago" (the largest unit only)."""
    if timezone.now() - when < timedelta(minutes=1):
        return "just now"
    return timesince(when, timezone.now()).split(",")[0] + " ago"


def _ids(count: int) -> str:
    return f"{count:,} id{'' if count == 1 else 's'}"


def restore_sentence(entry: AuditEntry, names: dict[str, str]) -> SafeString:
    """ "Restored the reference deleted by anna 2 hours ago (delete all)"; an undone import
    or fix says what it put back and took away: "Undid the import by anna just now: removed
    the 5 ids it added"."""
    put_back = (entry.after or {}).get("count", 0)
    taken_away = (entry.before or {}).get("count", 0)
    batch: Batch | None = entry.batch
    if batch is None:
        return format_html("Restored {} reference{}", put_back, "" if put_back == 1 else "s")
    who = actor_label(batch.actor, names)
    if batch.kind not in (Batch.Kind.DELETE, Batch.Kind.DELETE_ALL):
        parts = []
        if taken_away:
            parts.append(format_html("removed the {} it added", val(_ids(taken_away))))
        if put_back:
            parts.append(format_html("put back the {} it removed", val(_ids(put_back))))
        return format_html(
            "Undid the {} by {} {}: {}",
            batch.get_kind_display().lower(),
            who,
            ago(batch.created_at),
            join(parts) if parts else "nothing was left to change",
        )
    what = "the reference" if put_back == 1 else format_html("{} references", val(f"{put_back:,}"))
    sentence = format_html(
        "Restored {} deleted by {} {} ({})",
        what,
        who,
        ago(batch.created_at),
        batch.get_kind_display().lower(),
    )
    if taken_away:
        sentence = format_html(
            "{}; removed {} id{} added since", sentence, taken_away, "" if taken_away == 1 else "s"
        )
    return sentence


def sentence(entry: AuditEntry, names: dict[str, str]) -> SafeString:
    """The entry's change as one sentence with its values marked up."""
    before, after = entry.before, entry.after
    integration = entry.integration
    if entry.action == Action.RESTORE:
        return restore_sentence(entry, names)
    if is_reference(before) or is_reference(after):
        source = integration.source.name if integration else "Source"
        target = integration.target.name if integration else "Target"
        return reference_sentence(before, after, source, target)
    if entry.action in (Action.CUSTOM_DATA_SET, Action.CUSTOM_DATA_DELETE):
        return custom_data_sentence(before, after)
    if entry.action in (Action.RECORD_CREATE, Action.RECORD_UPDATE):
        return data_sentence(before, after)
    single = isinstance(after or before, dict) and "remote_id" in (after or before)
    if single and entry.record_id:
        connection = entry.connection.name if entry.connection else "The connection's"
        return remote_id_sentence(before, after, connection)
    # Bulk entries (delete all, import, a sync) and acknowledgements carry their own summary.
    return format_html("{}", entry.summary or entry.get_action_display())

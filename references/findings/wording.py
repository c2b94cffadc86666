"""How Health says things: entity names in the plural, and the forecast of the next sync."""

from __future__ import annotations

from common.entities import EntityType


def plural(record_type: str, n: int) -> str:
    if record_type == EntityType.STOCK:
        return "stock records" if n != 1 else "stock record"
    return f"{record_type}s" if n != 1 else record_type


def forecast(integration, record_type: str, unlinked: int, duplicates: int, reasons=()) -> str:
    """One sentence: what the next sync creates in the target, and how many it probably has,
    with why when a finding says (`reasons`: (how many, why) pairs)."""
    target = integration.target.name
    if not unlinked:
        return f"The next sync will create no new {plural(record_type, 2)} in {target}."
    sentence = (
        f"The next sync will create {unlinked:,} new {plural(record_type, unlinked)} in {target}"
    )
    duplicates = min(duplicates, unlinked)
    if duplicates:
        sentence += f"; {duplicates:,} of them probably exist there already"
        reasons = [(n, why) for n, why in reasons if n]
        if len(reasons) == 1 and reasons[0][0] >= duplicates:
            sentence += f": {reasons[0][1]}"
        elif reasons:
            sentence += " (" + "; ".join(f"{n:,}: {why}" for n, why in reasons) + ")"
    return sentence + "."


def creates_after(integration, record_type: str, n: int) -> str:
    """The forecast for what a delete-all or import would leave: "the next sync creates N"."""
    return f"the next sync creates {n:,} {plural(record_type, n)} in {integration.target.name}"

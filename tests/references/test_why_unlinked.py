"""Every unlinked record says why (issue 22, item 5): never linked, lost by a change (who,
when, how) or unlinked on purpose by a fix (with its reason); the row just deleted says so at
once, and the counts come with every htmx answer."""

import re

import pytest

from records import changes
from records.models import Batch
from references.services import delete_reference, reference_change_set
from tests.factories import make_reference
from tests.html import text_of

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def list_url(world):
    return f"/t/acme/integrations/{world.integration.pk}/references/orders/"


def row_text(page: str, source_id: str) -> str:
    """The text of the table row of `source_id`."""
    for row in re.findall(r"<tr data-row.*?</tr>", page, re.S):
        text = text_of(row)
        if text.startswith(source_id + " ") or text == source_id:
            return text
    raise AssertionError(f"no row {source_id}")


def reconcile_unlink(world, record, description="Reconciled 1 order ids with fortnox.csv"):
    """What Reconcile's fix writes for an id gone remotely: an unlink in a reconcile batch."""
    return changes.apply(
        reference_change_set(
            world.integration,
            "order",
            world.actor,
            Batch.Kind.RECONCILE,
            [changes.Change(changes.Action.UNLINK, line=1, record_id=record.pk)],
            description=description,
        )
    )


def oob_tab_count(page: str, label: str) -> str:
    tabs = re.search(r'id="ref-tabs" hx-swap-oob="true">(.*?)</div>', page, re.S).group(1)
    return re.search(rf"{label} <span class=\"count\"[^>]*>([^<]*)<", tabs).group(1).strip()


def test_a_link_removed_by_reconcile_says_so_with_its_reason_not_never_linked(admin_client, world):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    make_reference(world.integration, source_id="5002")  # never linked
    reconcile_unlink(world, record)

    page = admin_client.get(list_url(world)).text

    row = row_text(page, "5001")
    assert "never linked" not in row
    assert "unlinked 20" in row  # the time, made relative in the browser
    assert "by anna (reconcile: Reconciled 1 order ids with fortnox.csv); it was INV-1" in row
    assert "never linked" in row_text(page, "5002")


def test_the_lost_and_never_linked_filters_and_counts_follow_the_same_words(admin_client, world):
    reconciled = make_reference(world.integration, source_id="5001", target_id="INV-1")
    deleted = make_reference(world.integration, source_id="5002", target_id="INV-2")
    make_reference(world.integration, source_id="5003")
    reconcile_unlink(world, reconciled)
    delete_reference(world.integration, deleted, world.actor)

    lost = text_of(admin_client.get(list_url(world) + "?linked=lost").text)
    never = text_of(admin_client.get(list_url(world) + "?linked=never").text)

    assert "5001" in lost and "5002" in lost and "5003" not in lost
    assert "5003" in never and "5001" not in never and "5002" not in never
    assert "Showing 1-2 of 2" in lost or "of 2" in lost
    assert "of 1" in never


def test_the_deleted_row_says_lost_by_you_at_once_and_the_counts_come_along(admin_client, world):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    make_reference(world.integration, source_id="5002", target_id="INV-2")

    response = admin_client.post(
        list_url(world) + f"{record.local_id}/delete/", {"version": record.version}, **HX
    )

    row = row_text(response.text, "5001")
    assert "lost 20" in row and "by anna (delete); it was INV-1" in row
    assert "never linked" not in row
    assert oob_tab_count(response.text, "Orders") == "1"
    assert 'id="ref-linked" hx-swap-oob="true"' in response.text


def test_a_revert_from_history_sends_the_counts_along(admin_client, world):
    from records.models import AuditEntry

    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    delete_reference(world.integration, record, world.actor)
    record.refresh_from_db()
    entry = AuditEntry.objects.get(record=record, action="delete")

    response = admin_client.post(
        list_url(world) + f"{record.local_id}/history/{entry.pk}/revert/?to=before",
        {"version": record.version},
        **HX,
    )

    assert response.status_code == 200
    assert oob_tab_count(response.text, "Orders") == "1"  # 0 before the revert


def test_health_names_the_record_holding_a_lost_id(admin_client, world):
    record = make_reference(world.integration, source_id="5001", target_id="INV-1")
    delete_reference(world.integration, record, world.actor)
    make_reference(world.integration, source_id="5002", target_id="INV-1", source_ref="#1002")

    page = text_of(
        admin_client.get(
            f"/t/acme/integrations/{world.integration.pk}/health/orders/?finding=lost"
        ).text
    )

    assert "held by Shopify 5002 (#1002)" in page
    assert "held by another record" not in page

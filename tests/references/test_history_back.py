"""History can always go back (issue 22, item 6): the first edit of a synced reference can be
reverted to its synced values, and a deleted reference can be put back from its history long
after the toast is gone; both through the engine (audited, counted, undoable)."""

import re

import pytest

from records import changes
from records.audit import Actor
from records.models import AuditEntry, Batch, RemoteId
from records.services import create_record
from references.services import ReferenceInput, delete_reference, edit_reference

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
SYNC = Actor.system("sync")


def synced_reference(world, source_id, target_id):
    """An order a sync linked, as connectors do: each side's id set by a sync change set,
    with an audit entry per id (so its history starts with two "set id" entries)."""
    record = create_record(world.tenant, "order", SYNC, data={})
    for connection, remote_id in ((world.shop, source_id), (world.erp, target_id)):
        changes.apply(
            changes.ChangeSet(
                tenant=world.tenant,
                record_type="order",
                actor=SYNC,
                kind=Batch.Kind.SYNC,
                changes=[
                    changes.Change(
                        changes.Action.SET_ID,
                        record_id=record.pk,
                        connection_id=connection.pk,
                        remote_id=remote_id,
                    )
                ],
                integration=world.integration,
                audit_action=AuditEntry.Action.REMOTE_ID_SET,
                audit_each=True,
            )
        )
    record.refresh_from_db()
    return record


def base_url(world, record):
    return f"/t/acme/integrations/{world.integration.pk}/references/orders/{record.local_id}/"


def buttons(page: str) -> list[tuple[str, str]]:
    """(label, url) of each revert button of a history."""
    return [
        (label, url)
        for url, label in re.findall(r'hx-post="([^"]*revert[^"]*)"[^>]*>([^<]+)</button>', page)
    ]


def target_of(world, record):
    row = RemoteId.objects.filter(record=record, connection=world.erp).first()
    return row and row.remote_id


def test_the_first_edit_of_a_synced_reference_can_be_reverted_to_its_synced_values(
    admin_client, world
):
    record = synced_reference(world, "5001", "INV-1")
    record = edit_reference(
        world.integration,
        record,
        ReferenceInput("5001", "INV-2"),
        world.actor,
        version=record.version,
    )

    page = admin_client.get(base_url(world, record) + "history/", **HX).text
    offered = buttons(page)

    assert [label for label, _ in offered] == ["Revert to before"]
    admin_client.post(offered[0][1].replace("&amp;", "&"), {"version": record.version}, **HX)
    assert target_of(world, record) == "INV-1"
    assert AuditEntry.objects.filter(record=record, action="revert").exists()


def test_a_deleted_reference_can_be_put_back_from_its_history_after_the_toast(admin_client, world):
    record = synced_reference(world, "5001", "INV-1")
    delete_reference(world.integration, record, world.actor)
    record.refresh_from_db()

    page = admin_client.get(base_url(world, record) + "history/", **HX).text
    offered = dict(buttons(page))

    assert "Put back" in offered
    response = admin_client.post(offered["Put back"], {"version": record.version}, **HX)
    assert response.status_code == 200
    assert target_of(world, record) == "INV-1"
    assert "Reverted to 5001 → INV-1." in response.text  # the toast
    # Nothing left to go back to: the current values are the ones offered before.
    assert "Put back" not in dict(buttons(response.text))

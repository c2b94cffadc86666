"""Health over HTTP: lost links, probable duplicates, two target records, reused ids, the
forecast, the CSV export, roles and tenancy (reconciliation: test_reconcile.py).

The world is built through the app's own services and change engine (a user's adds and
deletes, a connection's creates, a sync's SET_ID writes), so batches, batch changes and
remote-id fingerprints are the real ones the health pages read.
"""

import csv
import html
import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from records import changes, jobs
from records.audit import Actor
from records.models import (
    AuditEntry,
    Batch,
    BatchChange,
    Job,
    Record,
    RemoteId,
    RemoteIdFingerprint,
)
from records.services import create_record, create_record_with_remote_id
from references.models import ReconcileUpload
from references.services import (
    ReferenceInput,
    add_reference,
    delete_all_references,
    delete_reference,
    edit_reference,
)
from tests.factories import MembershipFactory, UserFactory
from tests.html import text_of

pytestmark = pytest.mark.django_db

SYNC = Actor.system("sync")


# --- building the world through the app ---------------------------------------------------------


def shop_order(world, source_id, number=None, *, ref=""):
    """An order the Shopify connection pushed (its own id, the order number in the data)."""
    return create_record_with_remote_id(
        world.tenant,
        "order",
        world.shop,
        Actor.for_connection(world.shop),
        remote_id=source_id,
        remote_ref=ref,
        data={"orderNumber": number} if number else {},
    )


def set_id(world, record, connection, remote_id, ref="", actor=SYNC):
    """A sync writing (or with None removing) one connection's id of a record."""
    return changes.apply(
        changes.ChangeSet(
            tenant=world.tenant,
            record_type="order",
            actor=actor,
            kind=Batch.Kind.SYNC,
            changes=[
                changes.Change(
                    changes.Action.SET_ID,
                    record_id=record.pk,
                    connection_id=connection.pk,
                    remote_id=remote_id,
                    remote_ref=ref,
                )
            ],
            integration=world.integration,
        )
    )


def erp_only(world, target_id, number, *, ref=""):
    """An order only Fortnox knows: a sync created it there and wrote its Fortnox id."""
    record = create_record(world.tenant, "order", SYNC, data={"orderNumber": number})
    set_id(world, record, world.erp, target_id, ref)
    return record


def link(world, source_id, target_id, *, target_ref="", actor=None):
    return add_reference(
        world.integration,
        "order",
        ReferenceInput(source_id=source_id, target_id=target_id, target_ref=target_ref),
        actor or world.actor,
    )


def target_of(world, record):
    row = RemoteId.objects.filter(record_id=record.pk, connection=world.erp).first()
    return row and row.remote_id


def source_row(world, source_id):
    return RemoteId.objects.get(connection=world.shop, remote_id=source_id)


def target_row(world, target_id):
    return RemoteId.objects.get(connection=world.erp, remote_id=target_id)


# --- HTTP ---------------------------------------------------------------------------------------


def url(world, name, integration=None, **extra):
    integration = integration or world.integration
    kwargs = {"tenant_slug": "acme", "integration_id": integration.pk}
    if name != "health-overview":
        kwargs["entity"] = "orders"
    return reverse(f"references:{name}", kwargs={**kwargs, **extra})


def health_page(client, world, finding):
    return client.get(url(world, "health") + f"?finding={finding}")


def fix(client, world, finding, action, *rows, confirm=False, every=False, follow=False):
    data = {"finding": finding, "action": action, "row": [str(row) for row in rows]}
    if confirm:
        data["confirm"] = "1"
    if every:
        data["all"] = "1"
    return client.post(url(world, "health-fix"), data, follow=follow)


def undo(client, world, batch):
    return client.post(
        url(world, "backfill-undo", batch_id=batch.pk),
        {"next": url(world, "health")},
        follow=True,
    )


def click_undo(client, response):
    """Press the Undo button of the confirmation message, as a person would."""
    form = re.search(
        r'<form method="post" action="([^"]*/undo/)"[^>]*>(.*?)</form>',
        response.content.decode(),
        re.S,
    )
    assert form, "the confirmation offers no Undo button"
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
    fields = {name: html.unescape(value) for name, value in fields.items()}
    return client.post(html.unescape(form.group(1)), fields, follow=True)


def landed_on(response) -> str:
    return response.redirect_chain[-1][0] if response.redirect_chain else ""


def finding_rows_html(response) -> list[str]:
    return re.findall(r"<tr data-row.*?</tr>", response.content.decode(), re.S)


def finding_rows(response) -> list[str]:
    """The text of each finding row of a health page, as a person reads it."""
    return [text_of(row) for row in finding_rows_html(response)]


def page_text(response) -> str:
    return text_of(response.content.decode())


def written(counts) -> int:
    return counts["new"] + counts["changed"] + counts["removed"]


def batch_changes(batch, change):
    return BatchChange.objects.filter(batch=batch, change=change).count()


# --- lost links ---------------------------------------------------------------------------------


class TestLostLinks:
    def test_deleted_links_show_the_old_target_id_and_who_removed_them(self, admin_client, world):
        bert = UserFactory(username="bert")
        MembershipFactory(user=bert, tenant=world.tenant, role="admin")
        first = shop_order(world, "5001", "1001")
        link(world, "5001", "INV-1", target_ref="F-1")
        shop_order(world, "5002", "1002")
        link(world, "5002", "INV-2")
        shop_order(world, "5003", "1003")  # never linked
        delete_reference(world.integration, first, world.actor)
        delete_all_references(world.integration, "order", Actor.for_user(bert))

        response = health_page(admin_client, world, "lost")

        assert response.status_code == 200
        rows = finding_rows(response)
        assert len(rows) == 2
        newest, oldest = rows
        assert "5002" in newest and "INV-2" in newest
        assert "by bert (delete all)" in newest
        assert "5001" in oldest and "INV-1" in oldest and "F-1" in oldest
        assert "by anna (delete)" in oldest
        assert all("free" in row for row in rows)
        assert not any("5003" in row for row in rows)
        health = response.context["entity_health"]
        assert (int(health.unlinked), int(health.lost), health.never_linked) == (3, 2, 1)
        assert "Lost links 2" in page_text(response)

    def test_relink_is_previewed_then_applied_as_one_batch_that_can_be_undone(
        self, admin_client, world
    ):
        order = shop_order(world, "5001", "1001")
        link(world, "5001", "INV-1", target_ref="F-1")
        delete_reference(world.integration, order, world.actor)
        row = source_row(world, "5001").pk
        batches = Batch.objects.count()

        preview = fix(admin_client, world, "lost", "relink", row)

        assert preview.status_code == 200
        text = page_text(preview)
        assert "Apply 1 change" in text
        assert "Link 5001 → INV-1" in text
        counts = preview.context["counts"]
        assert counts["new"] == 1 and counts["rejected"] == 0
        assert target_of(world, order) is None  # a preview writes nothing
        assert Batch.objects.count() == batches

        applied = fix(admin_client, world, "lost", "relink", row, confirm=True)

        assert applied.status_code == 302
        assert applied["Location"] == url(world, "health") + "?finding=lost"
        assert target_row(world, "INV-1").record_id == order.pk
        assert target_row(world, "INV-1").remote_ref == "F-1"
        batch = Batch.objects.get(kind=Batch.Kind.RELINK)
        assert batch.row_count == written(counts)
        assert batch_changes(batch, "added") == written(counts)
        assert AuditEntry.objects.filter(action="relink", record=order).exists()
        after = admin_client.get(applied["Location"])
        assert "Put back 1 lost order link" in page_text(after)
        assert (
            reverse(
                "references:backfill-undo",
                kwargs={
                    "tenant_slug": "acme",
                    "integration_id": world.integration.pk,
                    "entity": "orders",
                    "batch_id": batch.pk,
                },
            )
            in after.content.decode()
        )
        assert finding_rows(after) == []

        undone = undo(admin_client, world, batch)

        assert undone.status_code == 200
        assert "Undone: Put back 1 lost order link" in page_text(undone)
        assert target_of(world, order) is None
        batch.refresh_from_db()
        assert batch.is_restored
        rows = finding_rows(health_page(admin_client, world, "lost"))
        assert len(rows) == 1 and "5001" in rows[0] and "INV-1" in rows[0]

    def test_relinking_every_lost_link_at_once(self, admin_client, world):
        for number in (1, 2):
            shop_order(world, f"500{number}", f"100{number}")
            link(world, f"500{number}", f"INV-{number}")
        delete_all_references(world.integration, "order", world.actor)

        preview = fix(admin_client, world, "lost", "relink", every=True)

        assert "Apply 2 changes" in page_text(preview)
        assert not RemoteId.objects.filter(connection=world.erp).exists()
        fix(admin_client, world, "lost", "relink", every=True, confirm=True)
        assert sorted(RemoteId.objects.filter(connection=world.erp).values_list("remote_id")) == [
            ("INV-1",),
            ("INV-2",),
        ]
        assert Batch.objects.get(kind=Batch.Kind.RELINK).row_count == 2

    def test_the_list_pages_by_fifty(self, admin_client, world):
        for number in range(51):
            shop_order(world, f"5{number:03d}", f"1{number:03d}")
            link(world, f"5{number:03d}", f"INV-{number}")
        delete_all_references(world.integration, "order", world.actor)

        first = health_page(admin_client, world, "lost")

        assert len(finding_rows(first)) == 50
        assert "Next 50" in page_text(first)
        second = admin_client.get(first.context["next_url"])
        assert second.status_code == 200
        (last,) = finding_rows(second)
        assert "5000" in last and "INV-0" in last

    def test_links_a_fix_removed_on_purpose_are_not_offered_back(self, admin_client, world):
        # Reconcile removes INV-1 because Fortnox's export says it is gone; unlinking a reused
        # id removes INV-7 because Fortnox gave it to something else. Neither is a lost link
        # to put back: "Put back the old link" would undo the fix and re-link a wrong id.
        shop_order(world, "5001", "1001")
        link(world, "5001", "INV-1")
        upload_export(admin_client, world, "Id,Reference\nX-1,nothing\n")
        token = ReconcileUpload.objects.get().token
        ticked = {"choose": "1", "gone": "1", "confirm_text": "orders"}  # a partial file
        admin_client.post(url(world, "reconcile-fix"), {"upload": token, "confirm": "1", **ticked})
        assert not RemoteId.objects.filter(remote_id="INV-1").exists()
        a = shop_order(world, "5002", "1002")
        set_id(world, a, world.erp, "INV-7", "#1002")
        set_id(world, a, world.erp, None)
        b = shop_order(world, "5003", "1003")
        set_id(world, b, world.erp, "INV-7", "#1003")
        fingerprint = RemoteIdFingerprint.objects.get(remote_id="INV-7")
        fix(admin_client, world, "reused", "unlink", fingerprint.pk, confirm=True)
        assert target_of(world, b) is None

        page = health_page(admin_client, world, "lost")
        rows = {row.split()[0]: row for row in finding_rows(page)}

        # Listed with what removed them and why (never "never linked"), with no fix of their
        # own, and the fix of all rows leaves them alone.
        assert rows["5001"].startswith("5001 INV-1 unlinked 20")
        assert "by anna (reconcile: Reconciled 1 order ids with fortnox.csv)" in rows["5001"]
        assert "unlinked on purpose" in rows["5001"]
        assert "(unlink reused ids: Unlinked 1 reused order id)" in rows["5003"]
        assert "Put back the old link" not in rows["5001"] + rows["5003"]
        # 3 rows, 1 of which (5002, lost by a sync) the fix puts back: the button says 1.
        assert "Put back the old link: all 1…" in page_text(page)
        preview = fix(admin_client, world, "lost", "relink", every=True)
        assert "5001" not in page_text(preview) and "5003" not in page_text(preview)

    def test_a_lost_link_whose_target_id_is_held_by_another_record_is_refused(
        self, admin_client, world
    ):
        order = shop_order(world, "5001", "1001")
        link(world, "5001", "INV-1")
        delete_reference(world.integration, order, world.actor)
        other = shop_order(world, "5002", "1002")
        link(world, "5002", "INV-1")  # the freed id went to another order
        row = source_row(world, "5001").pk

        page = health_page(admin_client, world, "lost")
        (shown,) = finding_rows(page)
        assert "INV-1" in shown and "held by Shopify 5002" in shown  # names the holder
        assert "Put back the old link" not in shown  # no per-row fix for it

        preview = fix(admin_client, world, "lost", "relink", row)

        assert preview.status_code == 200
        text = page_text(preview)
        assert "Fortnox id INV-1 is already linked to Shopify id 5002." in text
        assert "refused" in text and "Nothing to apply" in text
        assert preview.context["counts"]["rejected"] == 1
        assert written(preview.context["counts"]) == 0

        applied = fix(admin_client, world, "lost", "relink", row, confirm=True, follow=True)

        assert "Nothing was changed: Fortnox id INV-1 is already linked to Shopify id 5002." in (
            page_text(applied)
        )
        assert target_of(world, order) is None
        assert target_of(world, other) == "INV-1"
        assert not Batch.objects.filter(kind=Batch.Kind.RELINK).exists()


# --- probable duplicates ------------------------------------------------------------------------


class TestProbableDuplicates:
    def test_an_unlinked_order_with_a_target_only_twin_is_merged_and_can_be_undone(
        self, admin_client, world
    ):
        order = shop_order(world, "5001", "1001")
        shop_order(world, "5002", "1002")  # unlinked, but nothing in Fortnox shares its number
        duplicate = erp_only(world, "INV-9", "1001", ref="F-9")
        erp_only(world, "INV-8", "8888")  # Fortnox-only, no Shopify twin
        duplicate_row = target_row(world, "INV-9").pk

        page = health_page(admin_client, world, "duplicates")

        assert page.status_code == 200
        (shown,) = finding_rows(page)
        assert "5001" in shown and "1001" in shown and "INV-9" in shown
        assert "sync (system)" in shown  # who created the duplicate
        assert "Probable duplicates 1" in page_text(page)

        preview = fix(admin_client, world, "duplicates", "merge", duplicate_row)

        assert preview.status_code == 200
        text = page_text(preview)
        assert "Link to INV-9 and retire the duplicate" in text
        assert "Apply 1 change" in text
        counts = preview.context["counts"]
        assert target_of(world, order) is None
        assert Record.objects.filter(pk=duplicate.pk).exists()

        applied = fix(admin_client, world, "duplicates", "merge", duplicate_row, confirm=True)

        assert applied.status_code == 302
        assert target_row(world, "INV-9").record_id == order.pk
        assert target_row(world, "INV-9").remote_ref == "F-9"
        assert not Record.objects.filter(local_id=duplicate.local_id).exists()
        batch = Batch.objects.get(kind=Batch.Kind.DUPLICATES)
        assert batch.row_count == written(counts) == 1
        merged = AuditEntry.objects.get(action="merge", record=order)
        # The duplicate is named by its Fortnox id and ref, not its local id.
        assert "merged duplicate order INV-9 (F-9)" in merged.summary
        assert duplicate.local_id not in merged.summary
        assert finding_rows(health_page(admin_client, world, "duplicates")) == []

        undone = undo(admin_client, world, batch)

        assert "Undone:" in page_text(undone)
        back = Record.objects.get(local_id=duplicate.local_id)
        assert back.data == {"orderNumber": "1001"}
        assert target_row(world, "INV-9").record_id == back.pk
        assert target_of(world, order) is None
        (shown,) = finding_rows(health_page(admin_client, world, "duplicates"))
        assert "5001" in shown and "INV-9" in shown

    def test_the_undo_button_of_the_confirmation_returns_to_the_duplicates(
        self, admin_client, world
    ):
        order = shop_order(world, "5001", "1001")
        duplicate = erp_only(world, "INV-9", "1001")
        row = target_row(world, "INV-9").pk

        done = fix(admin_client, world, "duplicates", "merge", row, confirm=True, follow=True)
        assert "Merged 1 duplicate order" in page_text(done)

        undone = click_undo(admin_client, done)

        assert "Undone: Merged 1 duplicate order" in page_text(undone)
        assert Record.objects.filter(local_id=duplicate.local_id).exists()
        assert target_of(world, order) is None
        assert landed_on(undone) == url(world, "health") + "?finding=duplicates"


class TestLargeIntegrations:
    """Above REFDESK_HEALTH_LIVE_ROWS target ids a job looks for duplicates, not each page."""

    def test_a_job_finds_the_duplicates_and_the_page_says_as_of_when(
        self, admin_client, world, settings
    ):
        settings.REFDESK_HEALTH_LIVE_ROWS = 0
        order = shop_order(world, "5001", "1001")
        erp_only(world, "INV-9", "1001", ref="F-9")

        first = health_page(admin_client, world, "duplicates")

        # Opening the page starts nothing (no GET writes): it offers "Scan now".
        assert first.status_code == 200
        assert "Not scanned for duplicates yet" in page_text(first)
        assert not Job.objects.filter(kind="health_scan").exists()
        admin_client.post(url(world, "health-scan"))
        queued = health_page(admin_client, world, "duplicates")
        assert "Duplicates are being looked for" in page_text(queued)
        assert finding_rows(queued) == []
        job = Job.objects.get(kind="health_scan")
        assert job.params["record_types"] == ["order"]
        # Another Scan now while it is queued starts no second job.
        admin_client.post(url(world, "health-scan"))
        assert Job.objects.filter(kind="health_scan").count() == 1

        assert jobs.execute(job.pk, job.tenant_id) == "done"

        page = health_page(admin_client, world, "duplicates")
        assert "Duplicates as of" in page_text(page)
        assert "Probable duplicates 1" in page_text(page)
        (shown,) = finding_rows(page)
        assert "5001" in shown and "INV-9" in shown and "1001" in shown

        fix(admin_client, world, "duplicates", "merge", target_row(world, "INV-9").pk, confirm=True)

        # The fixed row leaves the list at once, without a new scan.
        assert target_of(world, order) == "INV-9"
        after = health_page(admin_client, world, "duplicates")
        assert finding_rows(after) == []
        assert "Probable duplicates 0" in page_text(after)

    def test_refresh_scans_again(self, admin_client, world, settings):
        settings.REFDESK_HEALTH_LIVE_ROWS = 0
        shop_order(world, "5001", "1001")
        shop_order(world, "5002", "1002")
        link(world, "5002", "INV-2")
        admin_client.post(url(world, "health-scan"))
        scan = Job.objects.get(kind="health_scan")
        jobs.execute(scan.pk, scan.tenant_id)
        erp_only(world, "INV-9", "1001")
        assert finding_rows(health_page(admin_client, world, "duplicates")) == []

        response = admin_client.post(url(world, "health-scan"))

        assert response.status_code == 302
        scan = Job.objects.filter(kind="health_scan").latest("pk")
        jobs.execute(scan.pk, scan.tenant_id)
        (shown,) = finding_rows(health_page(admin_client, world, "duplicates"))
        assert "INV-9" in shown


# --- two target records -------------------------------------------------------------------------


@pytest.fixture
def twins(world):
    """Shopify 5001 linked to Fortnox INV-1, and a second Fortnox order INV-2 with its number."""
    order = shop_order(world, "5001", "1001")
    link(world, "5001", "INV-1", target_ref="F-1")
    duplicate = erp_only(world, "INV-2", "1001", ref="F-2")
    return order, duplicate


class TestTwoTargetRecords:
    def test_a_linked_order_with_a_second_target_record_is_listed(self, admin_client, world, twins):
        page = health_page(admin_client, world, "twins")

        (shown,) = finding_rows(page)
        assert "5001" in shown and "INV-1" in shown and "1001" in shown and "INV-2" in shown
        assert finding_rows(health_page(admin_client, world, "duplicates")) == []

    def test_keep_linked_keeps_the_link_and_retires_the_duplicate(self, admin_client, world, twins):
        order, duplicate = twins
        row = target_row(world, "INV-2").pk

        preview = fix(admin_client, world, "twins", "keep-linked", row)

        assert preview.status_code == 200
        assert "Apply 1 change" in page_text(preview)
        assert Record.objects.filter(pk=duplicate.pk).exists()
        counts = preview.context["counts"]

        fix(admin_client, world, "twins", "keep-linked", row, confirm=True)

        assert target_row(world, "INV-1").record_id == order.pk
        assert not RemoteId.objects.filter(remote_id="INV-2").exists()
        assert not Record.objects.filter(local_id=duplicate.local_id).exists()
        assert Batch.objects.get(kind=Batch.Kind.DUPLICATES).row_count == written(counts)
        assert finding_rows(health_page(admin_client, world, "twins")) == []

    def test_use_other_links_the_source_to_the_second_record_instead(
        self, admin_client, world, twins
    ):
        order, duplicate = twins
        row = target_row(world, "INV-2").pk

        preview = fix(admin_client, world, "twins", "use-other", row)

        assert "Apply 1 change" in page_text(preview)
        assert target_of(world, order) == "INV-1"

        fix(admin_client, world, "twins", "use-other", row, confirm=True)

        assert target_of(world, order) == "INV-2"
        assert target_row(world, "INV-2").remote_ref == "F-2"
        assert not RemoteId.objects.filter(remote_id="INV-1").exists()
        assert not Record.objects.filter(local_id=duplicate.local_id).exists()
        assert finding_rows(health_page(admin_client, world, "twins")) == []


# --- reused ids ---------------------------------------------------------------------------------


@pytest.fixture
def reused(world):
    """INV-7 moved by a sync from order A to order B; INV-8's ref changed by a sync; INV-9's
    ref changed by a person."""
    a = shop_order(world, "5001", "1001")
    set_id(world, a, world.erp, "INV-7", "#1001")
    set_id(world, a, world.erp, None)  # the remote system was wiped
    b = shop_order(world, "5002", "1002")
    set_id(world, b, world.erp, "INV-7", "#1002")  # ... and gave INV-7 to another order
    c = shop_order(world, "5003", "1003")
    set_id(world, c, world.erp, "INV-8", "#1001")
    set_id(world, c, world.erp, "INV-8", "#5")
    d = shop_order(world, "5004", "1004")
    set_id(world, d, world.erp, "INV-9", "#1")
    edit_reference(
        world.integration,
        d,
        ReferenceInput(source_id="5004", target_id="INV-9", target_ref="#2"),
        world.actor,
        version=Record.objects.get(pk=d.pk).version,
    )
    return a, b, c, d


class TestReusedIds:
    def test_ids_a_sync_moved_or_gave_another_ref_are_listed_a_persons_edit_is_not(
        self, admin_client, world, reused
    ):
        a, b, c, d = reused

        page = health_page(admin_client, world, "reused")

        assert page.status_code == 200
        rows = finding_rows(page)
        assert len(rows) == 2
        by_id = dict(zip([row.split()[0] for row in rows], finding_rows_html(page), strict=True))
        assert set(by_id) == {"INV-7", "INV-8"}
        moved = by_id["INV-7"]  # both records are linked from the row: before and now
        assert a.local_id in moved and b.local_id in moved
        assert "#1001" in text_of(moved) and "#1002" in text_of(moved)
        assert "sync (system)" in text_of(moved)
        changed = text_of(by_id["INV-8"])
        assert "same record" in changed and "#1001" in changed and "#5" in changed
        assert not any("INV-9" in row for row in rows)
        evidence = {reuse.fingerprint.remote_id: reuse for reuse in page.context["rows"]}
        assert (evidence["INV-7"].before, evidence["INV-7"].holder) == (a, b)
        assert evidence["INV-7"].moved and evidence["INV-7"].ref_changed
        assert not evidence["INV-8"].moved and evidence["INV-8"].ref_changed
        assert "Reused ids 2" in page_text(page)

    def test_acknowledge_takes_the_id_off_the_list_and_is_audited(
        self, admin_client, world, reused
    ):
        a, b, c, d = reused
        fingerprint = RemoteIdFingerprint.objects.get(connection=world.erp, remote_id="INV-7")

        response = fix(admin_client, world, "reused", "acknowledge", fingerprint.pk, follow=True)

        assert response.status_code == 200
        assert "Acknowledged 1 reused id." in page_text(response)
        rows = finding_rows(health_page(admin_client, world, "reused"))
        assert [row.split()[0] for row in rows] == ["INV-8"]
        entry = AuditEntry.objects.get(action="acknowledge")
        assert entry.record_id == b.pk and entry.actor == "user/anna"
        assert "INV-7" in entry.summary
        assert target_of(world, b) == "INV-7"  # the id stays where it is

    def test_unlink_removes_the_reused_id_from_the_record_it_is_on(
        self, admin_client, world, reused
    ):
        a, b, c, d = reused
        fingerprint = RemoteIdFingerprint.objects.get(connection=world.erp, remote_id="INV-7")

        preview = fix(admin_client, world, "reused", "unlink", fingerprint.pk)

        assert preview.status_code == 200
        text = page_text(preview)
        assert "Remove id INV-7" in text and "Apply 1 change" in text
        assert target_of(world, b) == "INV-7"
        counts = preview.context["counts"]

        fix(admin_client, world, "reused", "unlink", fingerprint.pk, confirm=True)

        assert target_of(world, b) is None
        assert not RemoteId.objects.filter(remote_id="INV-7").exists()
        batch = Batch.objects.get(kind=Batch.Kind.UNLINK_REUSED)
        assert batch.row_count == written(counts) == 1
        assert batch_changes(batch, "removed") == 1
        rows = finding_rows(health_page(admin_client, world, "reused"))
        assert [row.split()[0] for row in rows] == ["INV-8"]


# --- forecast and export ------------------------------------------------------------------------


class TestForecast:
    def test_the_forecast_counts_what_the_next_sync_creates_and_what_probably_exists(
        self, admin_client, world
    ):
        for number in (1, 2, 3):
            shop_order(world, f"500{number}", f"100{number}")
        shop_order(world, "5004", "1004")
        link(world, "5004", "INV-4")  # linked: not created again
        erp_only(world, "INV-9", "1002")

        expected = (
            "The next sync will create 3 new orders in Fortnox; "
            "1 of them probably exist there already."
        )
        page = health_page(admin_client, world, "lost")
        assert expected in page_text(page)
        overview = admin_client.get(url(world, "health-overview"))
        assert overview.status_code == 200
        assert expected in page_text(overview)

    def test_nothing_unlinked_forecasts_nothing(self, admin_client, world):
        shop_order(world, "5001", "1001")
        link(world, "5001", "INV-1")

        page = health_page(admin_client, world, "lost")

        assert "The next sync will create no new orders in Fortnox." in page_text(page)


class TestExport:
    def test_the_lost_links_export_has_a_header_and_one_line_per_finding(self, admin_client, world):
        for number in (1, 2):
            shop_order(world, f"500{number}", f"100{number}")
            link(world, f"500{number}", f"INV-{number}")
        shop_order(world, "5003", "1003")  # never linked: not a finding
        delete_all_references(world.integration, "order", world.actor)

        response = admin_client.get(url(world, "health-export") + "?finding=lost")

        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "health-lost-orders-" in response["Content-Disposition"]
        lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        header, *rows = lines
        assert header[:3] == ["Shopify id", "Shopify ref", "lost Fortnox id"]
        assert len(rows) == 2
        assert sorted((row[0], row[2]) for row in rows) == [("5001", "INV-1"), ("5002", "INV-2")]
        assert all(row[5] == "user/anna" and row[6] == "delete all" for row in rows)
        assert all(row[-1] == "yes" for row in rows)

    def test_the_duplicates_export(self, admin_client, world):
        shop_order(world, "5001", "1001")
        erp_only(world, "INV-9", "1001", ref="F-9")

        response = admin_client.get(url(world, "health-export") + "?finding=duplicates")

        header, *rows = csv.reader(io.StringIO(b"".join(response.streaming_content).decode()))
        assert len(header) == 5
        assert rows == [["5001", "", "1001", "INV-9", "F-9"]]


# --- reconcile ----------------------------------------------------------------------------------

EXPORT = "Id,Reference\nINV-3,1003\nINV-3,1003\nINV-4,9999\nINV-5,1005\nNEW-1,1002\nNEW-2,7777\n"


def upload_export(client, world, content, name="fortnox.csv", side="target"):
    data = content.encode() if isinstance(content, str) else content
    return client.post(
        url(world, "reconcile"),
        {"side": side, "file": SimpleUploadedFile(name, data, content_type="text/csv")},
    )


# --- roles and tenancy --------------------------------------------------------------------------


class TestRolesAndTenancy:
    def test_support_sees_the_health_pages_but_cannot_fix_or_upload(self, support_client, world):
        order = shop_order(world, "5001", "1001")
        link(world, "5001", "INV-1")
        delete_reference(world.integration, order, world.actor)
        row = source_row(world, "5001").pk

        assert support_client.get(url(world, "health-overview")).status_code == 200
        page = health_page(support_client, world, "lost")
        assert page.status_code == 200
        assert "Only tenant admins can fix them." in page_text(page)
        assert "Put back the old link" not in page_text(page)
        assert support_client.get(url(world, "reconcile")).status_code == 200
        assert support_client.get(url(world, "health-export") + "?finding=lost").status_code == 200

        assert fix(support_client, world, "lost", "relink", row).status_code == 403
        assert fix(support_client, world, "lost", "relink", row, confirm=True).status_code == 403
        assert upload_export(support_client, world, EXPORT).status_code == 403
        assert support_client.post(url(world, "reconcile-fix"), {"upload": "x"}).status_code == 403
        assert target_of(world, order) is None
        assert not ReconcileUpload.objects.exists()

    def test_another_tenants_integration_is_not_found(self, admin_client, world):
        other = world.other_integration

        assert admin_client.get(url(world, "health-overview", other)).status_code == 404
        assert admin_client.get(url(world, "health", other)).status_code == 404
        assert admin_client.get(url(world, "reconcile", other)).status_code == 404
        assert fix(admin_client, world, "lost", "relink", 1).status_code == 302  # own: fine
        response = admin_client.post(
            url(world, "health-fix", other), {"finding": "lost", "action": "relink", "all": "1"}
        )
        assert response.status_code == 404

    def test_another_tenants_slug_is_not_found(self, admin_client, world):
        response = admin_client.get(
            reverse(
                "references:health-overview",
                kwargs={"tenant_slug": "other", "integration_id": world.other_integration.pk},
            )
        )
        assert response.status_code == 404


# --- reading writes nothing ---------------------------------------------------------------------


class TestReadingWritesNothing:
    """Opening a Health page (a GET) starts no scan and writes no audit entry, even where a
    scan is due: scans start from Scan now (a POST) or manage.py scan_health."""

    def test_a_get_of_every_health_page_creates_no_job_and_no_audit_entry(
        self, admin_client, world, reused, settings
    ):
        settings.REFDESK_HEALTH_LIVE_ROWS = 0  # every type is large: a scan is due
        lost = shop_order(world, "5101", "1101")
        link(world, "5101", "INV-101")
        delete_reference(world.integration, lost, world.actor)
        pages = [url(world, "health-overview")]
        for finding in ("lost", "duplicates", "twins", "reused"):
            pages += [
                url(world, "health") + f"?finding={finding}",
                url(world, "health-export") + f"?finding={finding}",
            ]
        pages += [url(world, name) for name in ("health-fix", "health-scan", "reconcile",
                                               "reconcile-fix", "reconcile-sample")]  # fmt: skip
        jobs_before, audit_before = Job.objects.count(), AuditEntry.objects.count()

        for page in pages:
            response = admin_client.get(page)
            assert response.status_code in (200, 302), page
            if response.streaming:  # an export is read to its end, as a download is
                b"".join(response.streaming_content)

        assert Job.objects.count() == jobs_before
        assert AuditEntry.objects.count() == audit_before
        assert "Not scanned for duplicates yet" in page_text(
            admin_client.get(url(world, "health-overview"))
        )

    def test_the_periodic_command_starts_the_scans_that_are_due_once(self, world, settings):
        settings.REFDESK_HEALTH_LIVE_ROWS = 0
        shop_order(world, "5001", "1001")
        erp_only(world, "INV-9", "1001")

        call_command("scan_health", stdout=io.StringIO())
        call_command("scan_health", stdout=io.StringIO())  # it runs already: not again

        # (The world's other integrations count as large too on PostgreSQL, whose planner
        # estimates an empty set above a limit of 0: they get their own job.)
        scans = Job.objects.filter(kind="health_scan", integration=world.integration)
        (job,) = scans
        assert job.actor == "system/health-scan"
        assert jobs.execute(job.pk, job.tenant_id) == "done"
        call_command("scan_health", stdout=io.StringIO())  # just scanned: not due
        assert scans.count() == 1


# --- a finding is one declared class ------------------------------------------------------------


class TestAFindingIsOneClass:
    def test_a_registered_class_gets_its_tab_list_fix_and_export(
        self, admin_client, world, monkeypatch
    ):
        """A new finding needs its class and its place in the registry: the page, the fix
        and the export follow (here: lost links of the last day, on the lost links' template)."""
        from references import findings
        from references.findings.lost import LostLinks

        class LostToday(LostLinks):
            name = "lost-today"
            label = "Lost today"

            def rows(self):
                return super().rows().filter(record__last_modified__gte=world.tenant.created_at)

        monkeypatch.setitem(findings.FINDINGS, LostToday.name, LostToday)
        order = shop_order(world, "5001", "1001")
        link(world, "5001", "INV-1")
        delete_reference(world.integration, order, world.actor)

        page = health_page(admin_client, world, "lost-today")
        export = admin_client.get(url(world, "health-export") + "?finding=lost-today")
        exported = b"".join(export.streaming_content).decode()
        done = fix(admin_client, world, "lost-today", "relink", source_row(world, "5001").pk,
                   confirm=True, follow=True)  # fmt: skip

        assert "Lost today 1" in page_text(page)
        (shown,) = finding_rows(page)
        assert "5001" in shown and "INV-1" in shown
        assert "health-lost-today-orders-" in export["Content-Disposition"]
        assert "5001" in exported
        assert "Put back 1 lost order link" in page_text(done)
        assert target_of(world, order) == "INV-1"

"""Reconcile over HTTP: an export compared with one integration's links on one side, the
report by class (named, summed), and the recovery plan: scoped to this integration, removing
nothing an incomplete file does not justify, moving reused ids to the records their keys
match, asking for the entity typed above a few percent of the tab, and undone from the report.

The world is built through the app's own services and change engine, as in test_health.
"""

import re
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from integrations.models import Integration
from records.models import Batch, Job, RemoteId
from references.models import ReconcileLine, ReconcileUpload
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.references.test_health import (
    batch_changes,
    click_undo,
    erp_only,
    landed_on,
    link,
    page_text,
    set_id,
    shop_order,
    target_of,
    target_row,
    upload_export,
    url,
    written,
)
from tests.workers import run_worker

pytestmark = pytest.mark.django_db

LINKS = 50
HEADER = "Id,Reference,OrderNumber\n"


@pytest.fixture
def reconcile_world(world):
    """50 linked orders (5001.. -> INV-1.., order numbers 1001..) and three unlinked ones
    (5100, 5101, 5102: order numbers 1100, 1101, 1102)."""
    records = {}
    for number in range(1, LINKS + 1):
        records[number] = shop_order(world, f"{5000 + number}", f"{1000 + number}")
        link(world, f"{5000 + number}", f"INV-{number}", target_ref=f"F-{number}")
    for number in (100, 101, 102):
        records[number] = shop_order(world, f"{5000 + number}", f"{1000 + number}")
    return records


def export_line(number, *, ref=None, key=None):
    ref = f"F-{number}" if ref is None else ref
    key = f"{1000 + number}" if key is None else key
    return f"INV-{number},{ref},{key}\n"


def full_export(*, leave_out=(), extra=""):
    """Fortnox's export of every linked order but `leave_out`, then `extra` lines."""
    lines = [export_line(n) for n in range(1, LINKS + 1) if n not in leave_out]
    return HEADER + "".join(lines) + extra


# INV-1 gone; INV-3 twice; INV-4's ref changed; INV-5 now carries order 1100 (reused);
# NEW-1 is order 1101 (matched); NEW-2 matches nothing.
EXPORT = full_export(
    leave_out=(1, 4, 5),
    extra=export_line(3)
    + export_line(4, ref="F-9999")
    + export_line(5, ref="F-new", key="1100")
    + "NEW-1,F-501,1101\nNEW-2,F-502,7777\n",
)


def report(client, world, **query):
    location = url(world, "reconcile") + f"?upload={ReconcileUpload.objects.get().token}"
    return client.get(location + "".join(f"&{k}={v}" for k, v in query.items()))


def shown(client, world, kind):
    page = report(client, world, **{"class": kind})
    assert page.status_code == 200
    return page, [(line.remote_id, line.file_ref) for line in page.context["lines"]]


def plan(client, world, confirm=False, **ticks):
    data = {"upload": ReconcileUpload.objects.get().token}
    if ticks:
        data["choose"] = "1"
        data.update({name: "1" for name, ticked in ticks.items() if ticked and name != "text"})
        if "text" in ticks:
            data["confirm_text"] = ticks["text"]
    if confirm:
        data["confirm"] = "1"
    return client.post(url(world, "reconcile-fix"), data, follow=confirm)


class TestTheReport:
    def test_every_class_is_listed_by_name_with_counts_that_add_up(
        self, admin_client, world, reconcile_world
    ):
        response = upload_export(admin_client, world, EXPORT)

        assert response.status_code == 302
        upload = ReconcileUpload.objects.get()
        assert upload.counts == {
            "ok": 46,
            "reused": 1,
            "ref_differs": 1,
            "matched": 1,
            "unknown": 1,
            "twice": 2,
            "stale": 1,
            "gone_shared": 0,
            "not_linked": 0,
        }
        text = page_text(report(admin_client, world))
        assert "52 lines with 51 distinct ids" in text
        assert "It shows 49 of the 50 Fortnox ids linked in" in text
        assert "(98%): it looks complete." in text
        assert (
            "In the file: 52 lines = 46 agree + 1 reused + 1 ref changed + "
            "1 new, matching an unlinked record + 1 new, no match + 2 twice" in text
        )
        assert (
            "Not in the file: 1 Fortnox id refdesk holds = 1 gone + "
            "0 linked in another integration + 0 not linked in this integration" in text
        )
        columns = "Id as the id; Reference as the ref; OrderNumber as the key (compared with"
        assert columns + " orderNumber)" in text

        page, lines = shown(admin_client, world, "stale")
        assert lines == [("INV-1", "")]
        assert "Shopify 5001" in page_text(page)
        page, lines = shown(admin_client, world, "reused")
        assert lines == [("INV-5", "F-new")]
        assert "Shopify 5005" in page_text(page) and "Shopify 5100" in page_text(page)
        page, lines = shown(admin_client, world, "matched")
        assert lines == [("NEW-1", "F-501")]
        assert "Shopify 5101" in page_text(page)
        assert shown(admin_client, world, "ref_differs")[1] == [("INV-4", "F-9999")]
        assert shown(admin_client, world, "twice")[1] == [("INV-3", "F-3"), ("INV-3", "F-3")]
        assert shown(admin_client, world, "unknown")[1] == [("NEW-2", "F-502")]
        for kind in ("stale", "reused", "matched"):  # names, never the hex local ids
            html = report(admin_client, world, **{"class": kind}).content.decode()
            assert not any(record.local_id[:12] in html for record in reconcile_world.values())

    def test_the_key_columns_are_detected_shown_and_can_be_chosen(
        self, admin_client, world, reconcile_world
    ):
        # The order number is in a column the key detection does not recognise: no reuse is
        # seen until the person chooses it as the key.
        content = "Doc_id,Ref,Shop order\n" + "".join(
            f"INV-{n},F-{n},{1100 if n == 5 else 1000 + n}\n" for n in range(1, LINKS + 1)
        )
        upload_export(admin_client, world, content)
        upload = ReconcileUpload.objects.get()
        assert (upload.id_column, upload.ref_column, upload.key_column) == (0, 1, None)
        assert upload.counts["reused"] == 0
        assert "Shop order not used" in page_text(report(admin_client, world))

        response = admin_client.post(
            url(world, "reconcile"), {"upload": upload.token, "ref_column": "1", "key_column": "2"}
        )

        assert response.status_code == 302
        upload.refresh_from_db()
        assert upload.key_column == 2
        assert upload.counts["reused"] == 1 and upload.counts["ok"] == LINKS - 1
        assert "Shop order as the key (compared with orderNumber)" in page_text(
            report(admin_client, world)
        )
        assert ReconcileLine.objects.filter(upload=upload).count() == LINKS  # compared again


class TestThePlan:
    def test_the_default_plan_is_previewed_by_names_then_applied_and_undone_from_the_report(
        self, admin_client, world, reconcile_world
    ):
        upload_export(admin_client, world, EXPORT)
        text = page_text(report(admin_client, world))
        assert "Preview the plan" in text
        assert "Fix: remove" not in text  # the main button only previews

        preview = plan(admin_client, world)

        assert preview.status_code == 200
        text = page_text(preview)
        assert "Remove id INV-1 from Shopify 5001" in text
        assert "Remove id INV-5 from Shopify 5005" in text
        assert "Set id INV-5 (F-new) on Shopify 5100" in text
        assert "Set id NEW-1 (F-501) on Shopify 5101" in text
        assert "Apply 4 changes" in text
        assert "Type orders to confirm" not in text  # 2 of 50 links: under 5%
        counts = preview.context["counts"]
        assert (counts["removed"], counts["new"], counts["rejected"]) == (2, 2, 0)
        assert target_of(world, reconcile_world[1]) == "INV-1"  # a preview writes nothing

        done = plan(admin_client, world, confirm=True)

        assert target_of(world, reconcile_world[1]) is None
        assert target_of(world, reconcile_world[5]) is None
        assert target_of(world, reconcile_world[100]) == "INV-5"
        assert target_of(world, reconcile_world[101]) == "NEW-1"
        assert target_of(world, reconcile_world[4]) == "INV-4"  # ref changed: left as is
        batch = Batch.objects.get(kind=Batch.Kind.RECONCILE)
        assert batch.row_count == written(counts) == 4
        assert batch_changes(batch, "removed") == 2
        assert ReconcileUpload.objects.get().batch == batch
        text = page_text(done)
        assert "Applied: Reconciled 4 order ids with fortnox.csv" in text
        assert "Undo this plan" in text

        # The report's own Undo (the toast is gone once the page is opened again).
        undone = click_undo(admin_client, report(admin_client, world))

        assert "Undone: Reconciled 4 order ids" in page_text(undone)
        assert landed_on(undone).endswith(f"?upload={ReconcileUpload.objects.get().token}")
        assert "(undone since)" in page_text(undone)
        assert target_of(world, reconcile_world[1]) == "INV-1"
        assert target_of(world, reconcile_world[5]) == "INV-5"
        assert target_of(world, reconcile_world[100]) is None
        assert target_of(world, reconcile_world[101]) is None

        again = plan(admin_client, world, confirm=True)
        assert "This report was applied already" in page_text(again)

    def test_an_incomplete_file_removes_nothing_by_default(
        self, admin_client, world, reconcile_world
    ):
        # The last 10 orders only, as an export "of this week" would be.
        upload_export(
            admin_client, world, HEADER + "".join(export_line(n) for n in range(41, LINKS + 1))
        )
        upload = ReconcileUpload.objects.get()
        assert upload.counts["stale"] == 40
        assert upload.coverage["complete"] is False
        text = page_text(report(admin_client, world))
        assert "(20%): it looks partial (under 90%)" in text
        assert "numbered" not in text  # INV-41: not numeric, no range to state
        html = report(admin_client, world).content.decode()
        assert re.search(r'name="gone" value="1"> Unlink 40 ids', html)  # offered, not ticked

        preview = plan(admin_client, world)
        assert preview.context["counts"]["removed"] == 0
        plan(admin_client, world, confirm=True)

        assert RemoteId.objects.filter(connection=world.erp).count() == LINKS
        assert not Batch.objects.filter(kind=Batch.Kind.RECONCILE).exists()

    def test_a_plan_unlinking_more_than_five_percent_asks_for_the_entity_typed(
        self, admin_client, world, reconcile_world
    ):
        upload_export(admin_client, world, full_export(leave_out=(1, 2, 3)))  # 6%: complete

        preview = plan(admin_client, world)
        assert preview.context["counts"]["removed"] == 3
        assert "Type orders to confirm" in page_text(preview)
        assert "This unlinks 3 of the 50 orders links" in page_text(preview)

        refused = plan(admin_client, world, confirm=True, gone=True)
        assert refused.status_code == 422
        wrong = plan(admin_client, world, confirm=True, gone=True, text="order")
        assert wrong.status_code == 422
        assert "Type orders exactly to confirm. Nothing was changed." in page_text(wrong)
        assert target_of(world, reconcile_world[1]) == "INV-1"

        plan(admin_client, world, confirm=True, gone=True, text="orders")

        assert [target_of(world, reconcile_world[n]) for n in (1, 2, 3, 4)] == [
            None, None, None, "INV-4"
        ]  # fmt: skip


class TestScope:
    @pytest.fixture
    def outlet(self, world, reconcile_world):
        """WooCommerce Outlet -> Fortnox shares the target: its orders W-1..W-5 are linked to
        INV-W1..INV-W5; order 5050 is sold through both shops; INV-X only Fortnox knows."""
        woo = ConnectionFactory(tenant=world.tenant, name="WooCommerce Outlet")
        outlet = IntegrationFactory(
            tenant=world.tenant, source=woo, target=world.erp, name="WooCommerce Outlet → Fortnox"
        )
        for number in range(1, 6):
            record = erp_only(world, f"INV-W{number}", f"{2000 + number}")
            set_id(world, record, woo, f"W-{number}")
        set_id(world, reconcile_world[50], woo, "W-50")
        erp_only(world, "INV-X", "3000")
        return outlet

    def outlet_links(self, world, outlet):
        woo_records = RemoteId.objects.filter(connection=outlet.source).values("record_id")
        return sorted(
            RemoteId.objects.filter(connection=world.erp, record_id__in=woo_records).values_list(
                "remote_id", flat=True
            )
        )

    def test_reconcile_never_changes_another_integrations_links(
        self, admin_client, world, reconcile_world, outlet
    ):
        before = self.outlet_links(world, outlet)
        assert len(before) == 6
        # Fortnox's export lacks every outlet order, INV-X and INV-1, and gives INV-50 (linked
        # in both integrations) to order 1100.
        upload_export(
            admin_client,
            world,
            full_export(leave_out=(1, 50), extra=export_line(50, ref="F-new", key="1100")),
        )
        upload = ReconcileUpload.objects.get()
        assert (upload.counts["stale"], upload.counts["gone_shared"]) == (1, 5)
        assert (upload.counts["not_linked"], upload.counts["reused"]) == (1, 1)
        text = page_text(report(admin_client, world))
        assert "also linked in WooCommerce Outlet → Fortnox: 6" in text
        assert "1 id only Fortnox knows (not linked in this integration) is never changed" in text
        page, _ = shown(admin_client, world, "gone_shared")
        assert "WooCommerce Outlet W-1" in page_text(page)

        plan(admin_client, world, confirm=True, gone=True, reused=True, matched=True)

        assert target_of(world, reconcile_world[1]) is None  # this integration's: removed
        assert self.outlet_links(world, outlet) == before  # the outlet's: untouched
        assert target_row(world, "INV-X")  # Fortnox's own: untouched
        assert target_of(world, reconcile_world[100]) is None  # its holder is the outlet's too

    def test_another_integrations_links_change_only_when_ticked(
        self, admin_client, world, reconcile_world, outlet
    ):
        upload_export(admin_client, world, full_export())  # every outlet order is gone

        plan(admin_client, world, confirm=True, gone=True, shared=True, text="orders")

        # The person ticked them; INV-50 is in the export (order 5050 of both shops).
        assert self.outlet_links(world, outlet) == ["INV-50"]
        assert target_row(world, "INV-X")  # known to Fortnox only: never touched


class TestReusedIds:
    def test_a_reused_id_moves_to_the_one_record_its_key_matches_else_is_listed(
        self, admin_client, world, reconcile_world
    ):
        # Two unlinked orders share number 1102: INV-7's new key matches both.
        shop_order(world, "5200", "1102")
        upload_export(
            admin_client,
            world,
            full_export(
                leave_out=(6, 7),
                extra=export_line(6, ref="F-x", key="1100") + export_line(7, key="1102"),
            ),
        )
        page, lines = shown(admin_client, world, "reused")
        assert sorted(lines) == [("INV-6", "F-x"), ("INV-7", "F-7")]
        assert "no single record: not fixed" in page_text(page)
        assert "Ref differs" not in page_text(page)

        plan(admin_client, world, confirm=True)

        assert target_of(world, reconcile_world[6]) is None
        assert target_of(world, reconcile_world[100]) == "INV-6"
        assert target_row(world, "INV-6").remote_ref == "F-x"
        assert target_of(world, reconcile_world[7]) == "INV-7"  # ambiguous: left as is


class TestTheDemo:
    def test_the_sample_export_shows_every_class_and_its_default_plan_touches_only_this_side(
        self, client, settings
    ):
        settings.DEBUG = True
        call_command("seed_demo", stdout=StringIO())
        main = Integration.objects.get(name="Shopify → Fortnox")
        outlet = Integration.objects.get(name="WooCommerce Outlet → Fortnox")

        def links(integration):
            source = RemoteId.objects.filter(connection=integration.source, record_type="order")
            return set(
                RemoteId.objects.filter(
                    connection=integration.target,
                    record_type="order",
                    record_id__in=source.values("record_id"),
                ).values_list("record_id", "remote_id")
            )

        outlet_before, main_before = links(outlet), links(main)
        client.force_login(main.tenant.memberships.get(role="admin").user)
        base = f"/t/acme/integrations/{main.pk}/health/orders/reconcile/"
        sample = b"".join(client.get(base + "sample.csv").streaming_content)
        client.post(base, {"side": "target", "file": SimpleUploadedFile("sample.csv", sample)})
        upload = ReconcileUpload.objects.get()

        assert upload.counts == {
            "ok": 1642,
            "reused": 2,
            "ref_differs": 1,
            "matched": 3,
            "unknown": 1,
            "twice": 2,
            "stale": 3,
            "gone_shared": 2,
            "not_linked": 1,
        }
        assert upload.coverage["complete"] is True

        client.post(base + "fix/", {"upload": upload.token, "confirm": "1"})

        assert links(outlet) == outlet_before
        after = links(main)
        assert len(main_before - after) == 5  # 3 gone, 2 reused moved off
        assert len(after - main_before) == 5  # 2 reused moved on, 3 matched


class TestABigPlan:
    @pytest.mark.django_db(transaction=True)
    def test_a_plan_run_as_a_job_applies_exactly_what_was_ticked(
        self, admin_client, world, reconcile_world, settings
    ):
        upload_export(
            admin_client,
            world,
            full_export(leave_out=(1, 2, 3, 4, 6), extra=export_line(6, key="1100")),
        )
        settings.REFDESK_JOB_THRESHOLD = 3  # the plan's 4 changes make a job

        # The gone ids ticked, the reused one not: the job must not move INV-6.
        response = plan(admin_client, world, confirm=True, gone=True, text="orders")

        assert response.status_code == 200
        job = Job.objects.get(kind="reconcile_apply")
        assert target_of(world, reconcile_world[1]) == "INV-1"  # nothing yet
        run_worker()
        job.refresh_from_db()
        assert job.state == "done"
        assert [target_of(world, reconcile_world[n]) for n in (1, 2, 3, 4, 5, 6)] == [
            None, None, None, None, "INV-5", "INV-6"
        ]  # fmt: skip
        assert target_of(world, reconcile_world[100]) is None
        assert ReconcileUpload.objects.get().batch == job.batch

"""Import, export, suggestions and undo over HTTP: roles, tenancy, errors, the full flow."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from records.models import AuditEntry, Batch, Record, RemoteId, writing
from references.models import ImportUpload
from tests.factories import RecordFactory, RemoteIdFactory, make_reference

pytestmark = pytest.mark.django_db


def url(world, name, integration=None, **extra):
    integration = integration or world.integration
    kwargs = {"tenant_slug": "acme", "integration_id": integration.pk, "entity": "orders"}
    return reverse(f"references:{name}", kwargs={**kwargs, **extra})


def csv_upload(text, name="orders.csv", encoding="utf-8"):
    return SimpleUploadedFile(name, text.encode(encoding) if isinstance(text, str) else text)


def upload(client, world, text, **kwargs):
    return client.post(url(world, "import"), {"file": csv_upload(text, **kwargs)})


def references(world):
    rows = RemoteId.objects.filter(record__record_type="order")
    targets = {r.record_id: r.remote_id for r in rows.filter(connection=world.erp)}
    return {r.remote_id: targets.get(r.record_id) for r in rows.filter(connection=world.shop)}


GOOD = "source_id,target_id\n5001,INV-1\n5002,INV-2\n,INV-3\n"


class TestUploadAndPreview:
    def test_upload_shows_a_dry_run_preview_and_writes_no_reference(self, admin_client, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")

        response = upload(admin_client, world, GOOD)
        assert response.status_code == 302
        preview = admin_client.get(response["Location"])

        assert preview.status_code == 200
        assert preview.context["counts"] == {"new": 1, "changed": 0, "unchanged": 1, "rejected": 1}
        page = preview.content.decode()
        assert "Preview of orders.csv" in page
        assert "Shopify id is required." in page
        assert "Import 1 reference" in page
        assert not RemoteId.objects.filter(remote_id="INV-2").exists()
        assert not Batch.objects.exists()

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("shop,erp\n1,2\n", "must be a header naming the columns source_id and target_id"),
            ("source_id,target_id\n5001,Fakturå\n".encode("latin-1"), "is not UTF-8 text"),
            ("source_id,target_id\n5001,INV-1\n5002;INV-2\n", "separated by &#x27;;&#x27;"),
            (bytes(range(256)) * 40960, "is not UTF-8 text"),  # 10 MB of garbage
        ],
        ids=["wrong header", "latin-1", "mixed delimiters", "10 MB garbage"],
    )
    def test_a_malformed_file_is_one_clear_error_and_nothing_is_kept(
        self, admin_client, world, content, message
    ):
        response = upload(admin_client, world, content)

        assert response.status_code == 422
        assert message in response.content.decode()
        assert not ImportUpload.objects.exists()
        assert not RemoteId.objects.exists() and not Batch.objects.exists()

    def test_a_file_over_the_size_cap_is_refused_with_the_limit(
        self, admin_client, world, settings
    ):
        settings.REFDESK_IMPORT_MAX_BYTES = 1024 * 1024
        response = upload(admin_client, world, "source_id,target_id\n" + "1,2\n" * 300_000)
        assert response.status_code == 422
        assert "at most 1 MB can be uploaded here" in response.content.decode()

    def test_another_users_upload_is_not_found(self, admin_client, client, world):
        location = upload(admin_client, world, GOOD)["Location"]
        other_admin = world.support
        other_admin.memberships.update(role="admin")
        client.force_login(other_admin)
        assert client.get(location).status_code == 404


class TestApply:
    def test_apply_writes_what_the_preview_counted(self, admin_client, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")
        location = upload(admin_client, world, GOOD)["Location"]
        counted = admin_client.get(location).context["counts"]
        token = ImportUpload.objects.get().token

        response = admin_client.post(url(world, "import-apply"), {"upload": token})

        assert response.status_code == 302
        assert response["Location"] == location
        assert references(world) == {"5001": "INV-1", "5002": "INV-2"}
        entry = AuditEntry.objects.get(action="import")
        assert entry.after == counted
        result = admin_client.get(location)
        assert "Imported orders.csv" in result.content.decode()
        assert "Undo this import" in result.content.decode()

    def test_applying_twice_is_refused(self, admin_client, world):
        upload(admin_client, world, GOOD)
        token = ImportUpload.objects.get().token
        admin_client.post(url(world, "import-apply"), {"upload": token})
        response = admin_client.post(url(world, "import-apply"), {"upload": token}, follow=True)
        assert "This file was already imported." in response.content.decode()
        assert Batch.objects.filter(kind="import").count() == 1

    def test_undo_restores_the_import(self, admin_client, world):
        upload(admin_client, world, GOOD)
        token = ImportUpload.objects.get().token
        admin_client.post(url(world, "import-apply"), {"upload": token})
        batch = Batch.objects.get()

        response = admin_client.post(url(world, "backfill-undo", batch_id=batch.pk), follow=True)

        assert "Undone: Imported 2 order references from orders.csv." in response.content.decode()
        assert references(world) == {}
        assert not Record.objects.exists()


class TestExport:
    def test_export_streams_the_import_format_and_reimports_as_all_unchanged(
        self, admin_client, world
    ):
        make_reference(world.integration, source_id="5001", target_id="INV-1", target_ref="F 1")
        make_reference(world.integration, source_id="5002", source_ref='#2, "quoted"')
        make_reference(world.integration, source_id="5003", target_id="INV-3")

        response = admin_client.get(url(world, "export"))
        content = b"".join(response.streaming_content)

        assert response["Content-Type"] == "text/csv"
        assert "attachment" in response["Content-Disposition"]
        assert content.startswith(b"\xef\xbb\xbfsource_id,target_id,source_ref,target_ref\r\n")
        assert b'5002,,"#2, ""quoted""",\r\n' in content
        location = upload(admin_client, world, content)["Location"]
        counts = admin_client.get(location).context["counts"]
        assert counts == {"new": 0, "changed": 0, "unchanged": 3, "rejected": 0}

    def test_cells_a_spreadsheet_would_run_are_exported_as_text_and_import_back(
        self, admin_client, world
    ):
        make_reference(
            world.integration,
            source_id='=HYPERLINK("http://evil.example","x")',
            target_id="-5",
            source_ref="@SUM(A1)",
            target_ref="+46 8 123",
        )
        make_reference(world.integration, source_id="'5002", target_id="'=quoted", source_ref="1")

        response = admin_client.get(url(world, "export"))
        content = b"".join(response.streaming_content)
        lines = content.decode("utf-8-sig").splitlines()

        assert sorted(lines[1:]) == [
            '"\'=HYPERLINK(""http://evil.example"",""x"")",\'-5,\'@SUM(A1),\'+46 8 123',
            "''5002,''=quoted,1,",
        ]
        # Every cell starts with text a spreadsheet shows as it is.
        for line in lines[1:]:
            for cell in line.split(","):
                assert not cell.lstrip('"').startswith(("=", "+", "-", "@"))
        location = upload(admin_client, world, content)["Location"]
        counts = admin_client.get(location).context["counts"]
        assert counts == {"new": 0, "changed": 0, "unchanged": 2, "rejected": 0}

    def test_export_follows_the_filters_of_the_list(self, support_client, world):
        make_reference(world.integration, source_id="5001", target_id="INV-1")
        make_reference(world.integration, source_id="5002")
        make_reference(world.integration, source_id="6003", target_id="INV-3")

        def exported(query):
            response = support_client.get(url(world, "export") + query)
            lines = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()
            return [line.split(",")[0] for line in lines[1:]]

        assert exported("?linked=unlinked") == ["5002"]
        assert exported("?linked=linked&q=500") == ["5001"]
        assert exported("?modified_after=2999-01-01") == []


class TestSuggestionsPage:
    def test_accept_one_from_the_page_then_undo_from_the_toast(self, admin_client, world):
        source = make_reference(world.integration, source_id="5001", source_ref="1001")
        twin = RecordFactory(tenant=world.tenant)
        RemoteIdFactory(record=twin, connection=world.erp, remote_id="INV-1", remote_ref="1001")

        page = admin_client.get(url(world, "suggestions"))
        assert page.status_code == 200
        (suggestion,) = page.context["suggestions"]
        response = admin_client.post(
            url(world, "suggestions-accept"),
            {"field": "remote_ref", "pair": suggestion.value},
            follow=True,
        )

        assert "Linked 1 suggested order reference." in response.content.decode()
        assert references(world) == {"5001": "INV-1"}
        batch = Batch.objects.get(kind="link_suggestions")
        admin_client.post(url(world, "backfill-undo", batch_id=batch.pk))
        assert references(world) == {"5001": None}
        assert Record.objects.filter(local_id=twin.local_id).exists()
        assert source.remote_ids.count() == 1


class TestRolesAndTenancy:
    ADMIN_ONLY_POSTS = ["import", "import-apply", "suggestions-accept"]

    def test_support_can_view_suggestions_and_export_but_not_import_or_accept(
        self, support_client, world
    ):
        assert support_client.get(url(world, "suggestions")).status_code == 200
        assert support_client.get(url(world, "export")).status_code == 200
        assert support_client.get(url(world, "import")).status_code == 403
        for name in self.ADMIN_ONLY_POSTS:
            assert support_client.post(url(world, name), {}).status_code == 403
        with writing():
            batch = Batch.objects.create(
                tenant=world.tenant,
                kind="import",
                actor="user/anna",
                integration=world.integration,
                record_type="order",
            )
        response = support_client.post(url(world, "backfill-undo", batch_id=batch.pk))
        assert response.status_code == 403

    def test_every_backfill_url_of_another_tenant_is_404(self, admin_client, world):
        other = world.other_integration
        with writing():
            batch = Batch.objects.create(
                tenant=world.other_tenant,
                kind="import",
                actor="user/otto",
                integration=other,
                record_type="order",
            )
        for name in ["import", "export", "suggestions"]:
            assert admin_client.get(url(world, name, other)).status_code == 404
        for name in self.ADMIN_ONLY_POSTS:
            assert admin_client.post(url(world, name, other), {}).status_code == 404
        own = url(world, "backfill-undo", batch_id=batch.pk)
        assert admin_client.post(own).status_code == 404
        other_slug = own.replace("/t/acme/", "/t/other/")
        assert admin_client.get(other_slug).status_code in (404, 405)
        assert not Batch.objects.filter(restored_at__isnull=False).exists()

    def test_an_entity_the_integration_does_not_sync_is_404(self, admin_client, world):
        world.integration.entity_types = ["article"]
        world.integration.save()
        assert admin_client.get(url(world, "import")).status_code == 404

from django.urls import path, re_path

from common.entities import SLUG_REGEX

from . import views_backfill as backfill
from . import views_health as health
from . import views_reconcile as reconcile
from . import views_restore as restore
from . import views_retry as retry
from . import views_rows as rows
from . import views_table as table

app_name = "references"

ENTITY = rf"(?P<entity>{SLUG_REGEX})"
BASE = r"^integrations/(?P<integration_id>[0-9]+)/references/" + ENTITY + "/"
RECORD = BASE + r"(?P<local_id>[0-9a-f]{32})/"
HEALTH = r"^integrations/(?P<integration_id>[0-9]+)/health/"

urlpatterns = [
    # The References table of one tab, and one reference's row actions.
    re_path(BASE + r"$", table.ReferenceListView.as_view(), name="list"),
    re_path(RECORD + r"$", table.ReferenceRowView.as_view(), name="row"),
    re_path(BASE + r"add/$", rows.AddReferenceView.as_view(), name="add"),
    re_path(RECORD + r"edit/$", rows.EditReferenceView.as_view(), name="edit"),
    re_path(RECORD + r"delete/$", rows.DeleteReferenceView.as_view(), name="delete"),
    re_path(RECORD + r"history/$", rows.HistoryView.as_view(), name="history"),
    re_path(
        RECORD + r"history/(?P<entry_id>[0-9]+)/revert/$",
        rows.RevertView.as_view(),
        name="revert",
    ),
    # Delete all, and the one restore view: from the tenant's URL (the References table's
    # Undo, the delete-all banner) or from one under the tab (every other Undo).
    re_path(BASE + r"delete-all/$", restore.DeleteAllView.as_view(), name="delete_all"),
    path("batches/<int:batch_id>/restore/", restore.RestoreBatchView.as_view(), name="restore"),
    re_path(
        BASE + r"backfill/(?P<batch_id>[0-9]+)/undo/$",
        restore.RestoreBatchView.as_view(),
        name="backfill-undo",
    ),
    # Retry sync for the rows the tab's filter shows.
    re_path(BASE + r"retry-sync/$", retry.FilteredRetrySyncView.as_view(), name="retry-sync"),
    # Backfill: CSV import and export, suggested links.
    re_path(BASE + r"import/$", backfill.ImportView.as_view(), name="import"),
    re_path(BASE + r"import/apply/$", backfill.ImportApplyView.as_view(), name="import-apply"),
    re_path(BASE + r"export\.csv$", backfill.ExportView.as_view(), name="export"),
    re_path(BASE + r"suggestions/$", backfill.SuggestionsView.as_view(), name="suggestions"),
    re_path(
        BASE + r"suggestions/accept/$",
        backfill.SuggestionsAcceptView.as_view(),
        name="suggestions-accept",
    ),
    # Health: why records get duplicated, and the fixes (previewed, undoable).
    re_path(HEALTH + r"$", health.HealthOverviewView.as_view(), name="health-overview"),
    re_path(HEALTH + ENTITY + r"/$", health.HealthView.as_view(), name="health"),
    re_path(HEALTH + ENTITY + r"/fix/$", health.HealthFixView.as_view(), name="health-fix"),
    re_path(HEALTH + ENTITY + r"/scan/$", health.HealthScanView.as_view(), name="health-scan"),
    re_path(
        HEALTH + ENTITY + r"/export\.csv$", health.HealthExportView.as_view(), name="health-export"
    ),
    # Reconcile: compare with a remote export, and fix what differs.
    re_path(HEALTH + ENTITY + r"/reconcile/$", reconcile.ReconcileView.as_view(), name="reconcile"),
    re_path(
        HEALTH + ENTITY + r"/reconcile/fix/$",
        reconcile.ReconcileFixView.as_view(),
        name="reconcile-fix",
    ),
    re_path(
        HEALTH + ENTITY + r"/reconcile/sample\.csv$",
        reconcile.ReconcileSampleView.as_view(),
        name="reconcile-sample",
    ),
]

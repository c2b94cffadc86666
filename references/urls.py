from django.urls import path, re_path

from common.entities import SLUG_REGEX

from . import views
from . import views_backfill as backfill
from . import views_health as health

app_name = "references"

ENTITY = rf"(?P<entity>{SLUG_REGEX})"
BASE = r"^integrations/(?P<integration_id>[0-9]+)/references/" + ENTITY + "/"
RECORD = BASE + r"(?P<local_id>[0-9a-f]{32})/"
HEALTH = r"^integrations/(?P<integration_id>[0-9]+)/health/"

urlpatterns = [
    re_path(BASE + r"$", views.ReferenceListView.as_view(), name="list"),
    re_path(BASE + r"add/$", views.AddReferenceView.as_view(), name="add"),
    re_path(BASE + r"delete-all/$", views.DeleteAllView.as_view(), name="delete_all"),
    re_path(RECORD + r"$", views.ReferenceRowView.as_view(), name="row"),
    re_path(RECORD + r"edit/$", views.EditReferenceView.as_view(), name="edit"),
    re_path(RECORD + r"delete/$", views.DeleteReferenceView.as_view(), name="delete"),
    re_path(RECORD + r"history/$", views.HistoryView.as_view(), name="history"),
    re_path(
        RECORD + r"history/(?P<entry_id>[0-9]+)/revert/$",
        views.RevertView.as_view(),
        name="revert",
    ),
    path("batches/<int:batch_id>/restore/", views.RestoreBatchView.as_view(), name="restore"),
    # Backfill: CSV import and export, suggested links, undo of the batches they write.
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
    re_path(HEALTH + ENTITY + r"/reconcile/$", health.ReconcileView.as_view(), name="reconcile"),
    re_path(
        HEALTH + ENTITY + r"/reconcile/fix/$",
        health.ReconcileFixView.as_view(),
        name="reconcile-fix",
    ),
    re_path(
        HEALTH + ENTITY + r"/reconcile/sample\.csv$",
        health.ReconcileSampleView.as_view(),
        name="reconcile-sample",
    ),
    re_path(
        BASE + r"backfill/(?P<batch_id>[0-9]+)/undo/$",
        backfill.BackfillUndoView.as_view(),
        name="backfill-undo",
    ),
]

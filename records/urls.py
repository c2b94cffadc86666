from django.urls import path, re_path

from . import views, views_jobs, views_retry

app_name = "records"

LOCAL_ID = r"(?P<local_id>[0-9a-f]{32})"

urlpatterns = [
    # A local id is 32 hex characters; record types never are, so these patterns come first.
    re_path(rf"^records/{LOCAL_ID}/$", views.RecordDetailView.as_view(), name="detail"),
    re_path(
        rf"^records/{LOCAL_ID}/custom-data/add/$",
        views.CustomDataAddView.as_view(),
        name="custom-data-add",
    ),
    re_path(
        rf"^records/{LOCAL_ID}/custom-data/(?P<custom_data_id>[0-9]+)/$",
        views.CustomDataItemView.as_view(),
        name="custom-data-item",
    ),
    re_path(
        rf"^records/{LOCAL_ID}/custom-data/(?P<custom_data_id>[0-9]+)/edit/$",
        views.CustomDataEditView.as_view(),
        name="custom-data-edit",
    ),
    re_path(
        rf"^records/{LOCAL_ID}/custom-data/(?P<custom_data_id>[0-9]+)/delete/$",
        views.CustomDataDeleteView.as_view(),
        name="custom-data-delete",
    ),
    re_path(
        rf"^records/{LOCAL_ID}/retry-sync/$",
        views_retry.RecordRetrySyncView.as_view(),
        name="retry-sync",
    ),
    path(
        "batches/<int:batch_id>/retry-sync/",
        views_retry.BatchRetrySyncView.as_view(),
        name="batch-retry-sync",
    ),
    path("records/", views.RecordIndexView.as_view(), name="index"),
    path("jobs/", views_jobs.JobListView.as_view(), name="jobs"),
    path("jobs/<int:job_id>/", views_jobs.JobDetailView.as_view(), name="job"),
    path("records/<slug:record_type>/", views.RecordListView.as_view(), name="list"),
]

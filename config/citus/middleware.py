"""The reseller's Django admin spans tenants: its statements may visit every shard."""

from django.urls import reverse

from common.citus.tables import fan_out_allowed


class ResellerAdminSpansTenants:
    """Requests to the Django admin run inside `fan_out_allowed()` (common/citus/tables.py,
    FAN_OUT_ALLOWED): a reseller's lists of records, remote ids, jobs and audit entries read
    every tenant of the reseller, so every shard. Installed on Citus only (config/settings.py);
    every other request stays on its tenant's shard."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.prefix = None

    def __call__(self, request):
        if self.prefix is None:
            self.prefix = reverse("admin:index")
        if not request.path.startswith(self.prefix):
            return self.get_response(request)
        with fan_out_allowed():
            return self.get_response(request)

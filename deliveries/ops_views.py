"""Operations routes: the metrics summary for a tenant and for the operator, and retention on demand."""

from rest_framework.response import Response

from deliveries import metrics, retention
from dispatcher.fields import StrictBooleanField, StrictSerializer
from dispatcher.problems import bad_request
from dispatcher.views import TenantView
from tenants.views import AdminView

DEFAULT_WINDOW = "24h"


def requested_window(request) -> str:
    window = request.query_params.get("window") or DEFAULT_WINDOW
    if window not in metrics.WINDOWS:
        raise bad_request(
            f"query parameter window={window!r} is invalid: use one of {', '.join(metrics.WINDOWS)}", "invalid_query",
        )
    return window


class MetricsSummaryView(TenantView):
    """GET /v1/metrics/summary: the tenant's delivery health over `window` (1h, 24h or 7d)."""

    def get(self, request):
        return Response(metrics.summary(requested_window(request), tenant_id=self.tenant.id))


class AdminMetricsSummaryView(AdminView):
    """GET /v1/admin/metrics/summary: delivery health across every tenant."""

    def get(self, request):
        return Response(metrics.summary(requested_window(request)))


class RetentionInputSerializer(StrictSerializer):
    dry_run = StrictBooleanField(required=False)


class AdminRetentionRunView(AdminView):
    """POST /v1/admin/retention/run: apply retention now and return the rows deleted per table."""

    def post(self, request):
        serializer = RetentionInputSerializer(data=request.data if request.body else {})
        serializer.is_valid(raise_exception=True)
        # NOTE: this runs inside the request; after a long pause of the hourly job, a backlog of
        # millions of rows is better cleared with `manage.py retention`, which has no HTTP timeout.
        report = retention.run_retention(dry_run=serializer.validated_data.get("dry_run", False))
        return Response(report.as_dict())

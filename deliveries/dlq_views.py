"""Dead-letter queue routes: the tenant's DLQ, single and bulk replay, and the operator's replay."""

from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from deliveries import dlq
from deliveries.models import DEAD_REASONS, Delivery
from deliveries.serializers import delivery_to_dict
from dispatcher.fields import (
    StrictBooleanField, StrictIntegerField, StrictSerializer, query_datetime, query_uuid,
)
from dispatcher.problems import bad_request, not_found
from dispatcher.views import TenantView
from tenants.models import Tenant
from tenants.views import AdminView

# Dead deliveries one bulk-replay request selects when it sends no `limit`.
DEFAULT_REPLAY_LIMIT = 1000
# Largest `limit` one bulk-replay request may send.
MAX_REPLAY_LIMIT = 10000
# Explicit ids one bulk-replay request may name.
MAX_REPLAY_IDS = 1000


class DlqPagination(CursorPagination):
    """Cursor pages over the most recently dead deliveries first."""

    ordering = ("-dead_at", "-id")
    page_size_query_param = "limit"
    max_page_size = 200


def dead_delivery_to_dict(delivery: Delivery) -> dict:
    return {**delivery_to_dict(delivery), "dead_at": delivery.dead_at}


class ReplayInputSerializer(StrictSerializer):
    ids = serializers.ListField(child=serializers.UUIDField(), required=False, allow_empty=False,
                                max_length=MAX_REPLAY_IDS)
    endpoint_id = serializers.UUIDField(required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    reason = serializers.ChoiceField(choices=DEAD_REASONS, required=False)
    limit = StrictIntegerField(required=False, min_value=1, max_value=MAX_REPLAY_LIMIT)
    dry_run = StrictBooleanField(required=False)


class AdminReplayInputSerializer(ReplayInputSerializer):
    tenant_id = serializers.UUIDField(required=False)

    def validate_tenant_id(self, value):
        if not Tenant.objects.filter(id=value).exists():
            raise not_found(f"tenant {value} not found")
        return value


def run_bulk_replay(request, serializer_class, tenant_id=None) -> Response:
    serializer = serializer_class(data=request.data if request.body else {})
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    selection = dlq.DlqFilter(
        tenant_id=tenant_id or data.get("tenant_id"), endpoint_id=data.get("endpoint_id"),
        since=data.get("since"), until=data.get("until"), reason=data.get("reason"), ids=data.get("ids"),
    )
    limit = data.get("limit", DEFAULT_REPLAY_LIMIT)
    result = dlq.replay_matching(selection, limit=limit, dry_run=data.get("dry_run", False))
    return Response(result.as_dict())


def query_dead_reason(request) -> str | None:
    reason = request.query_params.get("reason") or None
    if reason is not None and reason not in DEAD_REASONS:
        raise bad_request(f"query parameter reason={reason[:80]!r} is invalid: use one of {list(DEAD_REASONS)}",
                          "invalid_query")
    return reason


class DlqListView(TenantView):
    """GET /v1/dlq: the tenant's dead deliveries, filtered by endpoint, time of death and reason."""

    def get(self, request):
        selection = dlq.DlqFilter(
            tenant_id=self.tenant.id, endpoint_id=query_uuid(request, "endpoint_id"),
            since=query_datetime(request, "since"), until=query_datetime(request, "until"),
            reason=query_dead_reason(request),
        )
        paginator = DlqPagination()
        page = paginator.paginate_queryset(dlq.dead_deliveries(selection), request, view=self)
        return paginator.get_paginated_response([dead_delivery_to_dict(delivery) for delivery in page])


class DeliveryReplayView(TenantView):
    """POST /v1/deliveries/{id}/replay: send one dead delivery again with a fresh retry budget."""

    def post(self, request, pk):
        delivery = self.get_scoped(Delivery.objects.select_related("endpoint"), pk, "delivery")
        delivery = dlq.replay_delivery(delivery)
        return Response(delivery_to_dict(delivery), status=status.HTTP_202_ACCEPTED)


class DlqReplayView(TenantView):
    """POST /v1/dlq/replay: replay the tenant's dead deliveries chosen by ids or filters."""

    def post(self, request):
        return run_bulk_replay(request, ReplayInputSerializer, tenant_id=self.tenant.id)


class AdminDlqReplayView(AdminView):
    """POST /v1/admin/dlq/replay: replay dead deliveries of every tenant, or of `tenant_id`."""

    def post(self, request):
        return run_bulk_replay(request, AdminReplayInputSerializer)

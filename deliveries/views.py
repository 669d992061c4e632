from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from deliveries.models import Delivery, DeliveryStatus
from deliveries.serializers import attempt_to_dict, delivery_to_dict
from dispatcher.fields import query_uuid
from dispatcher.pagination import CreatedCursorPagination
from dispatcher.problems import bad_request
from dispatcher.views import TenantView
from events.models import Event
from events.serializers import event_to_dict


class EventDetailView(TenantView):
    """GET /v1/events/{id}: the event with its deliveries (served here, as deliveries depend on events)."""

    def get(self, request, pk):
        event = self.get_scoped(Event.objects.all(), pk, "event")
        deliveries = Delivery.objects.filter(event=event).order_by("created_at")
        return Response(event_to_dict(event, [delivery_to_dict(delivery) for delivery in deliveries]))


class DeliveryListView(TenantView):
    def get(self, request):
        deliveries = self.scoped(Delivery)
        if event_id := query_uuid(request, "event_id"):
            deliveries = deliveries.filter(event_id=event_id)
        if endpoint_id := query_uuid(request, "endpoint_id"):
            deliveries = deliveries.filter(endpoint_id=endpoint_id)
        if status := request.query_params.get("status"):
            if status not in DeliveryStatus.values:
                raise bad_request(f"query parameter status={status!r} is invalid: use one of {DeliveryStatus.values}",
                                  "invalid_query")
            deliveries = deliveries.filter(status=status)
        paginator = CreatedCursorPagination()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response([delivery_to_dict(delivery) for delivery in page])


class DeliveryDetailView(TenantView):
    def get(self, request, pk):
        return Response(delivery_to_dict(self.get_scoped(Delivery.objects.all(), pk, "delivery")))


class AttemptPagination(CursorPagination):
    ordering = ("number", "id")
    page_size_query_param = "limit"
    max_page_size = 200


class DeliveryAttemptListView(TenantView):
    def get(self, request, pk):
        delivery = self.get_scoped(Delivery.objects.all(), pk, "delivery")
        paginator = AttemptPagination()
        page = paginator.paginate_queryset(delivery.attempts.all(), request, view=self)
        return paginator.get_paginated_response([attempt_to_dict(attempt) for attempt in page])

from rest_framework import status
from rest_framework.response import Response

from dispatcher.fields import query_datetime
from dispatcher.pagination import CreatedCursorPagination
from dispatcher.views import TenantView
from events import services
from events.models import Event
from events.serializers import event_to_dict


class EventListView(TenantView):
    def get(self, request):
        events = self.scoped(Event)
        if "type" in request.query_params:
            events = events.filter(type=request.query_params["type"])
        if since := query_datetime(request, "since"):
            events = events.filter(created_at__gte=since)
        if until := query_datetime(request, "until"):
            events = events.filter(created_at__lt=until)
        paginator = CreatedCursorPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response([event_to_dict(event) for event in page])

    def post(self, request):
        event_type, payload = services.parse_event_body(request.body)
        event = services.accept_event(self.tenant, event_type, payload)
        body = {"id": str(event.id), "type": event.type, "created_at": event.created_at, "status": "accepted"}
        return Response(body, status=status.HTTP_202_ACCEPTED)


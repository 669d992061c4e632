from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from dispatcher.fields import query_datetime
from dispatcher.pagination import CreatedCursorPagination
from dispatcher.views import TenantView
from endpoints import services as endpoint_services
from events import services
from events.models import Event
from events.serializers import event_to_dict
from limits import idempotency, services as limits, usage


class EventListView(TenantView):
    def get(self, request):
        events = self.scoped(Event)
        if "type" in request.query_params:
            events = events.filter(type=services.query_event_type(request.query_params["type"]))
        if since := query_datetime(request, "since"):
            events = events.filter(created_at__gte=since)
        if until := query_datetime(request, "until"):
            events = events.filter(created_at__lt=until)
        paginator = CreatedCursorPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response([event_to_dict(event) for event in page])

    def post(self, request):
        key = idempotency.parse_key(request)
        raw = limits.read_body(request, self.tenant)
        claim = idempotency.claim(self.tenant, key, raw)
        if claim.replay is not None:
            response = _json_response(claim.replay.body.encode("utf-8"), claim.replay.status)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            content = self._accept(raw, claim)
        except Exception:
            claim.release()
            raise
        return _json_response(content, 202)

    def _accept(self, raw: bytes, claim: idempotency.Claim) -> bytes:
        """Check the limits, then store the event, its monthly count and its idempotent response together."""
        limits.check_event_rate(self.tenant)
        event_type, payload = services.parse_event_body(raw)
        matching = endpoint_services.matching_endpoints(self.tenant.id, event_type)
        limits.check_fanout(self.tenant, event_type, len(matching))
        with transaction.atomic():
            usage.count_event(self.tenant, timezone.now())
            event = services.accept_event(self.tenant, event_type, payload)
            body = {"id": str(event.id), "type": event.type, "created_at": event.created_at, "status": "accepted"}
            content = JSONRenderer().render(body)
            claim.complete(202, content.decode("utf-8"), event.id)
        return content


def _json_response(content: bytes, status: int) -> HttpResponse:
    return HttpResponse(content, status=status, content_type="application/json")


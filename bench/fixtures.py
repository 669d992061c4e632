"""Tenants, endpoints and the pre-loaded delivery backlog of a benchmark run.

Import only after `django.setup()`: these helpers use the service's own models and services,
so the rows are the same as the API would write.
"""

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus
from endpoints import services as endpoint_services
from events.models import Event
from events.services import build_envelope
from tenants import services as tenant_services

PRELOAD_CHUNK = 5000  # rows per bulk insert of the backlog
PRELOAD_EVENT_TYPE = "bench.preloaded"


@dataclass
class BenchTenant:
    name: str
    tenant_id: uuid.UUID
    api_key: str
    endpoint_ids: list[uuid.UUID]
    paths: list[str]  # receiver paths, one per endpoint, in the order of endpoint_ids


def create_bench_tenant(name: str, fanout: int, receiver_port: int) -> BenchTenant:
    """Create a tenant and `fanout` endpoints that all subscribe to every event type."""
    tenant, _, api_key = tenant_services.create_tenant(name)
    paths = [f"/{name}/{index}" for index in range(fanout)]
    endpoint_ids = []
    for path in paths:
        data = {"url": f"http://127.0.0.1:{receiver_port}{path}", "event_types": []}
        endpoint, _ = endpoint_services.create_endpoint(tenant, data, None)
        endpoint_ids.append(endpoint.id)
    return BenchTenant(name, tenant.id, api_key, endpoint_ids, paths)


def preload_backlog(target: BenchTenant, count: int) -> list[str]:
    """Insert `count` fanned-out events, each with one pending delivery to the tenant's first endpoint.

    Returns the event ids. The deliveries are due at once, so workers claim them as soon as a
    dispatch task runs.
    """
    event_ids = []
    for start in range(0, count, PRELOAD_CHUNK):
        size = min(PRELOAD_CHUNK, count - start)
        event_ids.extend(_insert_chunk(target, size))
    return event_ids


def _insert_chunk(target: BenchTenant, size: int) -> list[str]:
    now = timezone.now()
    events = []
    for number in range(size):
        event_id = uuid.uuid4()
        body = build_envelope(event_id, PRELOAD_EVENT_TYPE, now, {"order_id": number, "note": "x" * 120})
        events.append(Event(id=event_id, tenant_id=target.tenant_id, type=PRELOAD_EVENT_TYPE, body=body,
                            body_bytes=len(body.encode()), created_at=now, fanned_out_at=now))
    Event.objects.bulk_create(events)

    deliveries = [
        Delivery(tenant_id=target.tenant_id, event_id=event.id, endpoint_id=target.endpoint_ids[0],
                 status=DeliveryStatus.PENDING, next_attempt_at=now - dt.timedelta(seconds=1))
        for event in events
    ]
    Delivery.objects.bulk_create(deliveries)
    return [str(event.id) for event in events]


def count_deliveries_by_status() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
        return dict(cursor.fetchall())


def count_succeeded() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
        return cursor.fetchone()[0]


def count_attempts() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM delivery_attempts")
        return cursor.fetchone()[0]


def count_events() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events")
        return cursor.fetchone()[0]

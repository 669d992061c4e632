"""Usage limits: body size in bytes, endpoints, fan-out, monthly events and deferred monthly attempts."""

import datetime as dt
import json
import time

import pytest
import time_machine

from deliveries import services as delivery_services
from deliveries.models import Delivery, DeliveryAttempt
from events.models import Event
from limits.models import MonthlyUsage
from tests.harness import Reply, wait_until

UTC = dt.timezone.utc
MIB = 1024 * 1024
PREFIX = b'{"type":"big.event","payload":{"s":"'
SUFFIX = b'"}}'
MONTH_END = dt.datetime(2031, 3, 31, 23, 59, 30, tzinfo=UTC)
NEXT_MONTH = dt.datetime(2031, 4, 1, tzinfo=UTC)


def body_of_size(size: int) -> bytes:
    return PREFIX + b"a" * (size - len(PREFIX) - len(SUFFIX)) + SUFFIX


def post_raw(handle, body: bytes):
    return handle.client.post("/v1/events", body, content_type="application/json")


def set_limits(handle, **fields) -> None:
    for name, value in fields.items():
        setattr(handle.tenant, name, value)
    handle.tenant.save()


@pytest.fixture
def mib_tenant(make_tenant):
    handle = make_tenant("big")
    set_limits(handle, max_payload_bytes=MIB)
    return handle


def test_multibyte_body_counted_in_bytes(mib_tenant):
    body = json.dumps({"type": "big.event", "payload": {"s": "€" * 350_000}}, ensure_ascii=False).encode()
    assert len(body.decode()) < MIB < len(body)

    response = post_raw(mib_tenant, body)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert response.json()["detail"] == (f"request body is {len(body)} bytes; the limit is {MIB} bytes "
                                         "(UTF-8 bytes, not characters)")
    assert Event.objects.count() == 0


def test_exact_limit_passes(mib_tenant):
    response = post_raw(mib_tenant, body_of_size(MIB))

    assert response.status_code == 202
    assert Event.objects.get().type == "big.event"


def test_one_byte_over_fails(mib_tenant):
    response = post_raw(mib_tenant, body_of_size(MIB + 1))

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_escaped_and_literal_forms_judged_by_bytes(mib_tenant):
    escaped = json.dumps({"type": "big.event", "payload": {"s": "é" * 349_000}}).encode()
    literal = json.dumps({"type": "big.event", "payload": {"s": "é" * 349_000}}, ensure_ascii=False).encode()
    assert b"\\u00e9" in escaped and len(escaped) > MIB
    assert len(literal) < MIB

    assert post_raw(mib_tenant, escaped).status_code == 413
    accepted = post_raw(mib_tenant, literal)

    assert accepted.status_code == 202
    event = Event.objects.get()
    assert json.loads(event.body)["data"]["s"] == "é" * 349_000


def test_setting_limit_applies(tenant, settings):
    settings.USAGE_MAX_PAYLOAD_BYTES = 1000

    assert post_raw(tenant, body_of_size(1000)).status_code == 202
    assert post_raw(tenant, body_of_size(1001)).status_code == 413


def test_tenant_limit_above_django_upload_limit(make_tenant, settings):
    """A tenant override above DATA_UPLOAD_MAX_MEMORY_SIZE is honoured, not cut off by Django's 400."""
    handle = make_tenant("bigger")
    set_limits(handle, max_payload_bytes=3 * MIB)
    size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + MIB

    assert post_raw(handle, body_of_size(size)).status_code == 202


def test_endpoint_limit_stores_nothing(make_tenant, receiver):
    handle = make_tenant("few")
    set_limits(handle, max_endpoints=2)
    first = handle.create_endpoint(receiver.url("/1"))
    handle.create_endpoint(receiver.url("/2"))

    rejected = handle.client.post("/v1/endpoints", {"url": receiver.url("/3")}, format="json")
    handle.client.delete(f"/v1/endpoints/{first['id']}")
    after_delete = handle.client.post("/v1/endpoints", {"url": receiver.url("/4")}, format="json")

    assert rejected.status_code == 422
    assert rejected.json()["code"] == "endpoint_limit_reached"
    assert "signing_secret" not in rejected.json()
    assert after_delete.status_code == 201
    assert sorted(e.url.rsplit("/", 1)[1] for e in handle.tenant.endpoints.all()) == ["1", "2", "4"]


def test_fanout_limit_stores_nothing(make_tenant, receiver):
    handle = make_tenant("wide")
    set_limits(handle, max_fanout_endpoints=2)
    for path in ("/a", "/b", "/c"):
        handle.create_endpoint(receiver.url(path), event_types=["order.*"])
    handle.create_endpoint(receiver.url("/other"), event_types=["invoice.paid"])

    rejected = handle.send_event("order.created")

    assert rejected.status_code == 422
    assert rejected.json()["code"] == "fanout_limit_exceeded"
    assert "matches 3 enabled endpoints; at most 2" in rejected.json()["detail"]
    assert Event.objects.count() == 0
    assert MonthlyUsage.objects.filter(events__gt=0).count() == 0
    assert handle.send_event("invoice.paid").status_code == 202


def test_fanout_counts_enabled_endpoints_only(make_tenant, receiver):
    handle = make_tenant("narrow")
    set_limits(handle, max_fanout_endpoints=1)
    handle.create_endpoint(receiver.url("/a"))
    disabled = handle.create_endpoint(receiver.url("/b"))
    handle.client.patch(f"/v1/endpoints/{disabled['id']}", {"enabled": False}, format="json")

    assert handle.send_event().status_code == 202


def test_monthly_events_rejected_until_month_turns(make_tenant):
    handle = make_tenant("monthly")
    set_limits(handle, monthly_event_limit=2)

    with time_machine.travel(MONTH_END, tick=False):
        accepted = [handle.send_event().status_code for _ in range(2)]
        rejected = handle.send_event()
    with time_machine.travel(NEXT_MONTH, tick=False):
        next_month = handle.send_event()

    assert accepted == [202, 202]
    assert rejected.status_code == 429
    assert rejected.json()["code"] == "monthly_event_limit_reached"
    assert rejected["Retry-After"] == "30"
    assert rejected["RateLimit-Limit"] == "2"
    assert rejected["RateLimit-Remaining"] == "0"
    assert next_month.status_code == 202
    assert Event.objects.count() == 3


def test_usage_route_reports_month(make_tenant, receiver):
    handle = make_tenant("report")
    set_limits(handle, monthly_event_limit=5, max_endpoints=3)
    handle.create_endpoint(receiver.url("/a"))

    with time_machine.travel(MONTH_END, tick=False):
        handle.send_event()
        handle.send_event()
        usage = handle.client.get("/v1/limits/usage").json()

    assert usage["month"] == "2031-03"
    assert usage["resets_at"] == "2031-04-01T00:00:00Z"
    assert usage["events"] == {"used": 2, "limit": 5, "remaining": 3}
    assert usage["attempts"] == {"used": 0, "limit": 50000, "remaining": 50000}
    assert usage["endpoints"] == {"used": 1, "limit": 3, "remaining": 2}


def test_safety_route_applies_overrides(make_tenant, settings):
    settings.RATE_LIMIT_EVENTS_PER_MINUTE = 60
    handle = make_tenant("safe")
    set_limits(handle, events_per_minute=7, max_payload_bytes=MIB)

    body = handle.client.get("/v1/limits/safety").json()

    assert body["rate_limits"] == {"events_per_minute": 7, "endpoint_creates_per_hour": 30}
    assert body["usage_limits"] == {
        "monthly_event_limit": 10000, "monthly_attempt_limit": 50000, "max_endpoints": 1000,
        "max_payload_bytes": MIB, "max_fanout_endpoints": 100,
    }
    assert body["overridden"] == ["events_per_minute", "max_payload_bytes"]
    assert body["idempotency_key_ttl_hours"] == 24


def test_attempts_deferred_until_month_turns(make_tenant, receiver):
    handle = make_tenant("attempts")
    set_limits(handle, monthly_attempt_limit=1)
    handle.create_endpoint(receiver.url("/a"))
    handle.create_endpoint(receiver.url("/b"))

    with time_machine.travel(MONTH_END, tick=False):
        event_id = handle.send_event().json()["id"]
        delivery_services.fan_out_pending(event_id)
        delivery_services.dispatch_due()
    deferred = Delivery.objects.get(attempt_count=0)

    assert len(receiver.received()) == 1
    assert deferred.status == "pending"
    assert deferred.next_attempt_at == NEXT_MONTH
    assert deferred.last_error == "deferred: monthly attempt limit reached"
    assert MonthlyUsage.objects.get(month=dt.date(2031, 3, 1)).attempts == 1

    with time_machine.travel(NEXT_MONTH, tick=False):
        delivery_services.dispatch_due()

    assert len(receiver.received()) == 2
    assert sorted(Delivery.objects.values_list("attempt_count", flat=True)) == [1, 1]
    assert MonthlyUsage.objects.get(month=dt.date(2031, 4, 1)).attempts == 1


@pytest.mark.slow
def test_deferred_attempts_resume_when_limit_raised(make_tenant, receiver, admin_api, start_worker):
    handle = make_tenant("raise")
    set_limits(handle, monthly_attempt_limit=2)
    receiver.script("/a", Reply(500), Reply(200))
    handle.create_endpoint(receiver.url("/a"))
    start_worker(beat=True, env={"USAGE_DEFERRED_ATTEMPT_SECONDS": "1"})

    for number in range(3):
        assert handle.send_event(payload={"n": number}).status_code == 202
    receiver.wait_for(2, timeout=30)
    time.sleep(3)

    assert len(receiver.received()) == 2
    assert DeliveryAttempt.objects.count() == 2
    waiting = Delivery.objects.filter(status__in=["pending", "retrying"])
    assert waiting.count() == 2
    assert sorted(Delivery.objects.values_list("attempt_count", flat=True)) == [0, 1, 1]

    response = admin_api.patch(f"/v1/admin/tenants/{handle.tenant.id}", {"monthly_attempt_limit": 100},
                               format="json")
    assert response.status_code == 200
    received = receiver.wait_for(4, timeout=40)

    assert len(received) >= 4
    assert wait_until(lambda: Delivery.objects.filter(status="succeeded").count() == 3)
    assert DeliveryAttempt.objects.count() == MonthlyUsage.objects.get().attempts

"""Fixed-window rate limits: events per minute, endpoint creations per hour, admin requests per minute."""

import datetime as dt
import json

import pytest
import time_machine
from django.db import connection

from limits import purge
from limits.models import RateLimitCounter
from tests.live_client import post_event, send_concurrently

UTC = dt.timezone.utc
# 15.5 s into a minute window, so 44.5 s remain and Retry-After rounds up to 45.
MID_WINDOW = dt.datetime(2031, 3, 10, 12, 0, 15, 500000, tzinfo=UTC)
EVENT_BODY = json.dumps({"type": "order.created", "payload": {"n": 1}}).encode()


def post(handle, **headers):
    return handle.client.post("/v1/events", EVENT_BODY, content_type="application/json", **headers)


def statuses(responses) -> dict[int, int]:
    found: dict[int, int] = {}
    for response in responses:
        code = getattr(response, "status_code")
        found[code] = found.get(code, 0) + 1
    return found


def test_counter_table_has_exact_schema(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                       "WHERE table_name = 'rate_limit_counters' ORDER BY column_name")
        columns = {name: (kind, nullable, default) for name, kind, nullable, default in cursor.fetchall()}
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'rate_limit_counters'")
        indexes = dict(cursor.fetchall())

    assert sorted(columns) == ["count", "counter_key", "created_at", "scope", "tenant_id", "updated_at",
                               "window_seconds", "window_start"]
    assert columns["counter_key"][0] == "text"
    assert columns["tenant_id"][:2] == ("text", "NO")
    assert columns["scope"][:2] == ("text", "NO")
    assert columns["window_start"][:2] == ("timestamp with time zone", "NO")
    assert columns["window_seconds"][:2] == ("integer", "NO")
    assert columns["count"] == ("integer", "NO", "0")
    assert columns["created_at"][2] == "now()"
    assert columns["updated_at"][2] == "now()"
    assert sorted(indexes) == ["idx_rate_limit_counters_tenant_scope", "idx_rate_limit_counters_updated_at",
                               "idx_rate_limit_counters_window_start", "rate_limit_counters_pkey"]
    assert indexes["idx_rate_limit_counters_tenant_scope"].endswith("(tenant_id, scope)")
    assert indexes["idx_rate_limit_counters_window_start"].endswith("(window_start)")
    assert indexes["idx_rate_limit_counters_updated_at"].endswith("(updated_at)")


def test_event_limit_rejects_with_headers(make_tenant):
    handle = make_tenant("rate")
    handle.tenant.events_per_minute = 3
    handle.tenant.save()

    with time_machine.travel(MID_WINDOW, tick=False):
        accepted = [post(handle).status_code for _ in range(3)]
        rejected = post(handle)

    assert accepted == [202, 202, 202]
    assert rejected.status_code == 429
    assert rejected["Content-Type"] == "application/problem+json"
    assert rejected.json()["code"] == "rate_limited"
    assert rejected["Retry-After"] == "45"
    assert rejected["RateLimit-Limit"] == "3"
    assert rejected["RateLimit-Remaining"] == "0"
    assert rejected["RateLimit-Reset"] == "45"


def test_counter_row_records_window(make_tenant):
    handle = make_tenant("rows")
    with time_machine.travel(MID_WINDOW, tick=False):
        post(handle)
        post(handle)

    row = RateLimitCounter.objects.get(tenant_id=str(handle.tenant.id), scope="events")
    assert row.count == 2
    assert row.window_seconds == 60
    assert row.window_start == MID_WINDOW.replace(second=0, microsecond=0)
    assert row.counter_key == f"events:{handle.tenant.id}:{int(row.window_start.timestamp())}"


def test_window_edges(make_tenant):
    """A request at the last millisecond counts in the old window, one at +0 ms in the new one."""
    handle = make_tenant("edges")
    handle.tenant.events_per_minute = 1
    handle.tenant.save()
    window_end = dt.datetime(2031, 3, 10, 12, 1, 0, tzinfo=UTC)

    with time_machine.travel(window_end - dt.timedelta(milliseconds=2), tick=False):
        first = post(handle)
    with time_machine.travel(window_end - dt.timedelta(milliseconds=1), tick=False):
        last_millisecond = post(handle)
    with time_machine.travel(window_end, tick=False):
        new_window = post(handle)
        new_window_second = post(handle)

    assert first.status_code == 202
    assert last_millisecond.status_code == 429
    assert last_millisecond["Retry-After"] == "1"
    assert new_window.status_code == 202
    assert new_window_second.status_code == 429
    assert new_window_second["Retry-After"] == "60"


def test_other_tenant_unaffected(make_tenant):
    limited = make_tenant("limited")
    limited.tenant.events_per_minute = 1
    limited.tenant.save()
    other = make_tenant("other")
    other.tenant.events_per_minute = 1
    other.tenant.save()

    with time_machine.travel(MID_WINDOW, tick=False):
        assert post(limited).status_code == 202
        assert post(limited).status_code == 429
        assert post(other).status_code == 202


def test_setting_applies_without_override(make_tenant, settings):
    settings.RATE_LIMIT_EVENTS_PER_MINUTE = 2
    handle = make_tenant("defaults")

    with time_machine.travel(MID_WINDOW, tick=False):
        codes = [post(handle).status_code for _ in range(3)]

    assert codes == [202, 202, 429]


def test_endpoint_creates_per_hour(make_tenant, receiver):
    handle = make_tenant("creates")
    handle.tenant.endpoint_creates_per_hour = 2
    handle.tenant.save()
    at = dt.datetime(2031, 3, 10, 12, 30, 0, tzinfo=UTC)

    with time_machine.travel(at, tick=False):
        invalid = handle.client.post("/v1/endpoints", {"url": "ftp://x.test/"}, format="json")
        created = handle.client.post("/v1/endpoints", {"url": receiver.url("/a")}, format="json")
        rejected = handle.client.post("/v1/endpoints", {"url": receiver.url("/b")}, format="json")
    with time_machine.travel(at + dt.timedelta(minutes=30), tick=False):
        next_hour = handle.client.post("/v1/endpoints", {"url": receiver.url("/c")}, format="json")

    assert invalid.status_code == 422
    assert created.status_code == 201
    assert rejected.status_code == 429
    assert rejected.json()["code"] == "rate_limited"
    assert rejected["Retry-After"] == "1800"
    assert rejected["RateLimit-Limit"] == "2"
    assert next_hour.status_code == 201
    assert handle.tenant.endpoints.count() == 2


def test_admin_requests_per_minute(admin_api, tenant, settings):
    settings.RATE_LIMIT_ADMIN_REQUESTS_PER_MINUTE = 2

    with time_machine.travel(MID_WINDOW, tick=False):
        tenant_key_on_admin = tenant.client.get("/v1/admin/tenants")
        allowed = [admin_api.get("/v1/admin/tenants").status_code for _ in range(2)]
        rejected = admin_api.get("/v1/admin/tenants")

    assert tenant_key_on_admin.status_code == 403
    assert allowed == [200, 200]
    assert rejected.status_code == 429
    assert rejected["RateLimit-Limit"] == "2"
    assert RateLimitCounter.objects.get(scope="admin").tenant_id == "admin"


@pytest.mark.slow
def test_concurrent_posts_pass_exactly_limit(live_server, make_tenant, broker):
    """200 posts race for a limit of 100: exactly 100 pass, the rest get 429 with headers."""
    handle = make_tenant("race")
    handle.tenant.events_per_minute = 100
    handle.tenant.save()
    other = make_tenant("bystander")

    with time_machine.travel(dt.datetime(2031, 3, 10, 12, 0, 1, tzinfo=UTC), tick=True):
        responses = send_concurrently(200, post_event(live_server.url, handle.key, EVENT_BODY))
        bystander = send_concurrently(5, post_event(live_server.url, other.key, EVENT_BODY))

    assert statuses(responses) == {202: 100, 429: 100}
    for response in responses:
        if response.status_code == 429:
            assert response.json()["code"] == "rate_limited"
            assert response.headers["RateLimit-Limit"] == "100"
            assert response.headers["RateLimit-Remaining"] == "0"
            assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert handle.tenant.events.count() == 100
    assert statuses(bystander) == {202: 5}


@pytest.mark.slow
def test_limit_ten_race_then_nine_then_ten(live_server, make_tenant, broker):
    """25 concurrent posts in a fresh window pass 10; 9 sequential then 10 concurrent pass 1 of the 10."""
    handle = make_tenant("ten")
    handle.tenant.events_per_minute = 10
    handle.tenant.save()
    send = post_event(live_server.url, handle.key, EVENT_BODY)

    with time_machine.travel(dt.datetime(2031, 3, 10, 12, 0, 1, tzinfo=UTC), tick=True) as traveller:
        fresh_window = send_concurrently(25, send)
        traveller.move_to(dt.datetime(2031, 3, 10, 12, 1, 1, tzinfo=UTC), tick=True)
        sequential = send_concurrently(9, send, threads=1)
        racing = send_concurrently(10, send)

    assert statuses(fresh_window) == {202: 10, 429: 15}
    assert statuses(sequential) == {202: 9}
    assert statuses(racing) == {202: 1, 429: 9}
    assert handle.tenant.events.count() == 20


def test_purge_keeps_current_windows(make_tenant):
    handle = make_tenant("purge")
    with time_machine.travel(MID_WINDOW - dt.timedelta(days=2), tick=False):
        post(handle)
    with time_machine.travel(MID_WINDOW, tick=False):
        post(handle)
        deleted = purge.purge_expired()

    assert deleted["rate_limit_counters"] == 1
    assert RateLimitCounter.objects.get().window_start == MID_WINDOW.replace(second=0, microsecond=0)

"""The metrics summary, checked against a known set of events, deliveries and attempts."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.db.models import F, FloatField
from rest_framework.test import APIClient

from deliveries import metrics
from deliveries.models import Delivery, DeliveryAttempt
from endpoints.models import Endpoint
from events.models import Event
from tenants import services as tenant_services

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.timezone.utc)
# Durations of the attempts inside the last hour, in ms; sorted, p50 is 300 and p95 interpolates.
DURATIONS_MS = [100, 200, 300, 400, 1000]


def ago(**delta) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


class Shop:
    """One tenant's rows at known times around NOW."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.good = Endpoint.objects.create(tenant=tenant, url="https://good.example/hook")
        self.flaky = Endpoint.objects.create(tenant=tenant, url="https://flaky.example/hook")
        self.down = Endpoint.objects.create(tenant=tenant, url="https://down.example/hook")

    def event(self, created: dt.datetime) -> Event:
        return Event.objects.create(tenant=self.tenant, type="order.created", body="{}", body_bytes=2,
                                    created_at=created, fanned_out_at=created)

    def delivery(self, event: Event, endpoint: Endpoint, status: str, succeeded_after: float | None = None,
                 created: dt.datetime | None = None) -> Delivery:
        delivery = Delivery.objects.create(tenant=self.tenant, event=event, endpoint=endpoint, status=status,
                                           next_attempt_at=NOW)
        succeeded = event.created_at + dt.timedelta(seconds=succeeded_after) if succeeded_after is not None else None
        Delivery.objects.filter(id=delivery.id).update(created_at=created or event.created_at, succeeded_at=succeeded)
        return delivery

    def attempt(self, delivery: Delivery, started: dt.datetime, duration_ms: int, status_code: int = 200,
                error: str = "") -> DeliveryAttempt:
        return DeliveryAttempt.objects.create(
            delivery=delivery, tenant=self.tenant, number=delivery.attempts.count() + 1, started_at=started,
            duration_ms=duration_ms, status_code=status_code, error_kind="http_status" if error else "",
            error_message=error,
        )


@pytest.fixture
def shop(make_tenant):
    """Rows of the last hour, the last day and the last week, plus one tenant whose rows must not count."""
    with time_machine.travel(NOW, tick=False):
        shop = Shop(make_tenant("shop").tenant)
        recent = [shop.event(ago(minutes=50 - minute)) for minute in range(4)]
        first = shop.delivery(recent[0], shop.good, "succeeded", succeeded_after=1)
        second = shop.delivery(recent[1], shop.good, "succeeded", succeeded_after=3)
        flaky = shop.delivery(recent[2], shop.flaky, "retrying")
        dead = shop.delivery(recent[3], shop.down, "dead")
        shop.attempt(first, ago(minutes=49), DURATIONS_MS[0])
        shop.attempt(second, ago(minutes=48), DURATIONS_MS[1])
        shop.attempt(flaky, ago(minutes=40), DURATIONS_MS[2], 502, "HTTP 502")
        shop.attempt(dead, ago(minutes=30), DURATIONS_MS[3], 500, "HTTP 500")
        shop.attempt(dead, ago(minutes=20), DURATIONS_MS[4], 503, "HTTP 503 last")

        day_old = shop.event(ago(hours=5))
        shop.delivery(day_old, shop.good, "pending", created=ago(hours=5))
        shop.attempt(shop.delivery(day_old, shop.flaky, "succeeded", succeeded_after=60), ago(hours=5), 5000)
        week_old = shop.event(ago(days=3))
        shop.delivery(week_old, shop.good, "dead")

        other = Shop(make_tenant("other").tenant)
        other_event = other.event(ago(minutes=10))
        other.attempt(other.delivery(other_event, other.down, "dead"), ago(minutes=10), 9000, 500, "HTTP 500")
    shop.other = other
    return shop


@pytest.fixture
def client(shop):
    _, raw = tenant_services.create_api_key(shop.tenant)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def summary_of(client, window: str | None = "1h", path: str = "/v1/metrics/summary") -> dict:
    with time_machine.travel(NOW, tick=False):
        response = client.get(path, {"window": window} if window else {})
    assert response.status_code == 200, response.content
    return response.json()


def test_summary_of_last_hour(client):
    body = summary_of(client)

    assert body["window"] == "1h"
    assert body["events_received"] == 4
    assert body["deliveries"]["total"] == 4
    assert body["deliveries"]["by_status"] == {
        "pending": 0, "in_flight": 0, "retrying": 1, "succeeded": 2, "dead": 1, "cancelled": 0,
    }
    assert body["attempts"] == {
        "total": 5, "succeeded": 2, "failed": 3, "success_rate": 0.4,
        "latency_ms": {"p50": 300.0, "p95": 880.0, "p99": 976.0},
    }
    assert body["event_to_success_ms"] == {"p50": 2000.0, "p95": 2900.0}
    assert body["dlq_size"] == 2
    assert body["backlog"] == {"waiting": 2, "due": 2, "oldest_pending_age_seconds": 5 * 3600.0}


def test_failing_endpoints_rank_by_failures(shop, client):
    failing = summary_of(client)["failing_endpoints"]

    assert [row["url"] for row in failing] == ["https://down.example/hook", "https://flaky.example/hook"]
    down = failing[0]
    assert down["failed_attempts"] == 2
    assert down["last_error"] == "HTTP 503 last"
    assert down["last_status_code"] == 503
    assert down["last_error_kind"] == "http_status"
    assert down["endpoint_id"] == str(shop.down.id)


def test_summary_of_last_week(client):
    body = summary_of(client, "7d")

    assert body["events_received"] == 6
    assert body["deliveries"]["by_status"]["dead"] == 2
    assert body["deliveries"]["by_status"]["pending"] == 1
    assert body["attempts"]["total"] == 6
    assert body["event_to_success_ms"]["p50"] == 3000.0


def test_default_window_is_a_day(client):
    body = summary_of(client, None)

    assert body["window"] == "24h"
    assert body["events_received"] == 5


def test_admin_summary_covers_every_tenant(shop, admin_api):
    body = summary_of(admin_api, "1h", "/v1/admin/metrics/summary")

    assert body["events_received"] == 5
    assert body["attempts"]["total"] == 6
    assert body["dlq_size"] == 3
    assert [row["failed_attempts"] for row in body["failing_endpoints"]] == [2, 1, 1]
    assert {row["tenant_id"] for row in body["failing_endpoints"]} == {str(shop.tenant.id), str(shop.other.tenant.id)}


@pytest.mark.parametrize("window", ["30m", "1d", "7D", "24"])
def test_other_windows_are_rejected(make_tenant, window):
    handle = make_tenant("reader")
    response = handle.client.get("/v1/metrics/summary", {"window": window})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"
    assert response.json()["detail"] == f"query parameter window={window!r} is invalid: use one of 1h, 24h, 7d"


def test_tenant_key_cannot_read_admin_summary(make_tenant):
    assert make_tenant("reader").client.get("/v1/admin/metrics/summary").status_code == 403


def test_python_percentiles_match_postgresql(shop, monkeypatch):
    attempts = DeliveryAttempt.objects.filter(tenant=shop.tenant)
    fractions = (0.5, 0.9, 0.95, 0.99)
    in_database = metrics.percentiles(attempts, F("duration_ms"), fractions, FloatField(), "started_at")

    monkeypatch.setattr(connection, "vendor", "sqlite")
    in_python = metrics.percentiles(attempts, F("duration_ms"), fractions, FloatField(), "started_at")

    assert in_python == pytest.approx(in_database)


def test_interpolated_percentile_edges():
    assert metrics.interpolated_percentile([], 0.5) is None
    assert metrics.interpolated_percentile([7], 0.99) == 7
    assert metrics.interpolated_percentile([1, 2], 0.5) == 1.5
    assert metrics.interpolated_percentile([100, 200, 300, 400, 1000], 0.95) == pytest.approx(880)

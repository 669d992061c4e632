"""The delivery state machine in-process: real receivers and database, a frozen clock."""

import datetime as dt

import pytest
import standardwebhooks
import time_machine

from deliveries import services
from deliveries.models import Delivery
from endpoints.models import Endpoint
from tests.harness import Reply

T0 = 1_700_000_000


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


@pytest.fixture
def short_schedule(settings):
    settings.DELIVERY_RETRY_SCHEDULE = [5, 300, 1800, 7200]
    settings.DELIVERY_MAX_RETRIES = 4
    return settings


def publish(tenant, receiver, path: str, *replies: Reply):
    receiver.script(path, *replies)
    endpoint = tenant.create_endpoint(receiver.url(path))
    response = tenant.send_event("order.created", {"n": 1})
    assert response.status_code == 202
    services.fan_out_pending()
    return endpoint, Delivery.objects.get(endpoint_id=endpoint["id"])


def step(delivery: Delivery, clock) -> Delivery:
    """Move the clock to the delivery's retry time and run one dispatch."""
    delivery.refresh_from_db()
    clock.move_to(delivery.next_attempt_at)
    assert services.dispatch_due() >= 1
    delivery.refresh_from_db()
    return delivery


def test_retry_then_success_resigns_each_attempt(tenant, receiver, short_schedule):
    with time_machine.travel(at(T0), tick=False) as clock:
        endpoint, delivery = publish(tenant, receiver, "/r", Reply(500), Reply(500), Reply(200))
        for _ in range(3):
            delivery = step(delivery, clock)
    requests = receiver.received("/r")
    assert len(requests) == 3
    assert delivery.status == "succeeded"
    assert delivery.attempt_count == 3
    assert list(delivery.attempts.values_list("status_code", flat=True)) == [500, 500, 200]
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert len({request.body for request in requests}) == 1
    timestamps = [int(request.headers["webhook-timestamp"]) for request in requests]
    assert timestamps[0] == T0
    assert timestamps[0] < timestamps[1] < timestamps[2]
    for request in requests:
        wh = standardwebhooks.Webhook(endpoint["signing_secret"])
        with time_machine.travel(at(int(request.headers["webhook-timestamp"])), tick=False):
            wh.verify(request.body, request.headers)


def test_late_retry_carries_its_own_timestamp(tenant, receiver, short_schedule):
    replay_time = T0 + 3 * 86400 + 7200
    with time_machine.travel(at(T0), tick=False) as clock:
        endpoint, delivery = publish(tenant, receiver, "/late", Reply(500), Reply(200))
        services.dispatch_due()
        clock.move_to(at(T0 + 7200))
        services.dispatch_due()
        clock.move_to(at(replay_time))
        assert tenant.client.post(f"/v1/deliveries/{delivery.id}/replay").status_code == 202
        services.dispatch_due()
    first, second, replayed = receiver.received("/late")
    assert [int(request.headers["webhook-timestamp"]) for request in (first, second, replayed)] == [
        T0, T0 + 7200, replay_time]
    assert first.body == second.body == replayed.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == replayed.headers["webhook-id"]
    webhook = standardwebhooks.Webhook(endpoint["signing_secret"])
    for request in (second, replayed):
        with time_machine.travel(at(int(request.headers["webhook-timestamp"]) + 60), tick=False):
            webhook.verify(request.body, request.headers)


def test_always_failing_goes_dead_after_last_retry(tenant, receiver, settings):
    settings.DELIVERY_RETRY_SCHEDULE = [1]
    settings.DELIVERY_MAX_RETRIES = 3
    with time_machine.travel(at(T0), tick=False) as clock:
        _, delivery = publish(tenant, receiver, "/fail", Reply(500))
        for _ in range(4):
            delivery = step(delivery, clock)
        clock.shift(3600)
        assert services.dispatch_due() == 0
    assert delivery.status == "dead"
    assert delivery.dead_reason == "retries_exhausted"
    assert delivery.attempt_count == 4
    assert delivery.next_attempt_at is None
    assert len(receiver.received("/fail")) == 4


def test_retries_follow_the_schedule(tenant, receiver, short_schedule):
    with time_machine.travel(at(T0), tick=False) as clock:
        _, delivery = publish(tenant, receiver, "/s", Reply(500), Reply(500), Reply(500), Reply(500), Reply(200))
        delays = []
        for _ in range(5):
            delivery = step(delivery, clock)
            if delivery.next_attempt_at:
                delays.append((delivery.next_attempt_at - dt.datetime.now(dt.timezone.utc)).total_seconds())
    assert delivery.status == "succeeded"
    assert delivery.attempt_count == 5
    for delay, base in zip(delays, [5, 300, 1800, 7200]):
        assert base * 0.8 <= delay <= base * 1.2


@pytest.mark.parametrize(
    ("status", "retry_after", "low", "high"),
    [
        (429, "120", 120, 120),
        (503, "HTTP_DATE_T_PLUS_600", 600, 600),
        (429, "86400", 3600, 3600),
        (503, "soon", 4, 6),
        (500, "120", 4, 6),
    ],
)
def test_retry_after_is_a_capped_lower_bound(tenant, receiver, short_schedule, status, retry_after, low, high):
    if retry_after == "HTTP_DATE_T_PLUS_600":
        retry_after = "Tue, 14 Nov 2023 22:23:20 GMT"  # T0 + 600 s
    with time_machine.travel(at(T0), tick=False):
        _, delivery = publish(tenant, receiver, "/ra", Reply(status, headers={"Retry-After": retry_after}))
        services.dispatch_due()
    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert delivery.attempt_count == 1
    delay = (delivery.next_attempt_at - at(T0)).total_seconds()
    assert low <= delay <= high


def test_gone_disables_endpoint_and_stops(tenant, receiver):
    receiver.script("/ok", Reply(200))
    healthy = tenant.create_endpoint(receiver.url("/ok"))
    _, delivery = publish(tenant, receiver, "/gone", Reply(410))
    services.dispatch_due()
    delivery.refresh_from_db()
    endpoint = Endpoint.objects.get(id=delivery.endpoint_id)
    assert delivery.status == "dead"
    assert delivery.dead_reason == "gone"
    assert endpoint.enabled is False
    assert endpoint.disabled_reason == "gone"
    assert len(receiver.received("/ok")) == 1

    tenant.send_event("order.created")
    services.fan_out_pending()
    services.dispatch_due()
    assert len(receiver.received("/gone")) == 1
    assert len(receiver.received("/ok")) == 2
    assert Delivery.objects.filter(endpoint_id=healthy["id"], status="succeeded").count() == 2


@pytest.mark.parametrize("action", ["delete", "disable"])
def test_removed_endpoint_cancels_waiting_retry(tenant, receiver, short_schedule, action):
    with time_machine.travel(at(T0), tick=False) as clock:
        endpoint, delivery = publish(tenant, receiver, "/later", Reply(500), Reply(200))
        services.dispatch_due()
        if action == "delete":
            assert tenant.client.delete(f"/v1/endpoints/{endpoint['id']}").status_code == 204
        else:
            response = tenant.client.patch(f"/v1/endpoints/{endpoint['id']}", {"enabled": False}, format="json")
            assert response.status_code == 200
        clock.shift(600)
        services.dispatch_due()
    delivery.refresh_from_db()
    assert delivery.status == "cancelled"
    assert len(receiver.received("/later")) == 1
    assert delivery.attempts.count() == 1

"""Nothing is lost when the broker drops messages, a worker dies or a request rolls back."""

import contextlib
import datetime as dt
import socket
import threading
import time
import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries import services
from deliveries.models import Delivery
from dispatcher.celery import app
from events import services as event_services
from events.models import Event
from tests.harness import Reply, wait_for_succeeded
from tests.receivers import RawReceiver, delayed, respond

# Limits high enough that these tests measure the pipeline, not the rate limiter.
UNLIMITED = {"events_per_minute": 100_000, "monthly_event_limit": 1_000_000, "monthly_attempt_limit": 1_000_000}
FAST_WORKER = {"DELIVERY_SWEEP_SECONDS": "1", "DELIVERY_TIMEOUT_SECONDS": "2", "DELIVERY_CONNECT_TIMEOUT_SECONDS": "1",
               "DELIVERY_LEASE_MARGIN_SECONDS": "1", "DELIVERY_RETRY_SCHEDULE": "1"}


def queued_messages(broker) -> int:
    return broker.llen("celery")


@pytest.mark.slow
def test_flushed_broker_loses_nothing(make_tenant, receiver, broker, start_worker):
    tenant = make_tenant("shop", **UNLIMITED)
    tenant.create_endpoint(receiver.url("/all"))
    for number in range(200):
        assert tenant.send_event("order.created", {"n": number}).status_code == 202
    assert queued_messages(broker) == 200
    broker.flushdb()

    start_worker(env=FAST_WORKER, beat=True)
    received = receiver.wait_for(200, timeout=90)
    assert len({request.headers["webhook-id"] for request in received}) == 200
    assert wait_for_succeeded(200) == 200


@pytest.mark.slow
def test_killed_worker_loses_nothing(make_tenant, start_worker):
    tenant = make_tenant("shop", **UNLIMITED)
    with RawReceiver(routes={"/slow": delayed(0.3, respond(200))}) as server:
        tenant.create_endpoint(server.url("/slow"))
        for number in range(60):
            assert tenant.send_event("order.created", {"n": number}).status_code == 202
        first = start_worker(env=FAST_WORKER, concurrency=1)
        deadline = time.monotonic() + 30
        while len(server.requests) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.kill()
        assert len(server.requests) >= 5
        assert Delivery.objects.filter(status="succeeded").count() < 60

        start_worker(env=FAST_WORKER, beat=True)
        succeeded = wait_for_succeeded(60)
        ids = {request.headers["webhook-id"] for request in server.requests}
    assert len(ids) == 60
    assert succeeded == 60


def test_concurrent_dispatch_of_one_delivery_posts_once(make_tenant, receiver, transactional_db):
    tenant = make_tenant("shop", **UNLIMITED)
    receiver.script("/once", Reply(200))
    tenant.create_endpoint(receiver.url("/once"))
    tenant.send_event()
    services.fan_out_pending()
    delivery_id = str(Delivery.objects.get().id)
    barrier = threading.Barrier(4)

    def dispatch():
        barrier.wait()
        services.dispatch_due(ids=[delivery_id])
        connection.close()

    threads = [threading.Thread(target=dispatch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(receiver.received("/once")) == 1
    assert Delivery.objects.get().attempt_count == 1


def test_long_retries_use_no_broker_countdown(make_tenant, receiver, settings, broker, transactional_db):
    settings.DELIVERY_RETRY_SCHEDULE = [7200, 18000, 36000]
    tenant = make_tenant("shop", **UNLIMITED)
    receiver.script("/down", Reply(500))
    tenant.create_endpoint(receiver.url("/down"))
    tenant.send_event()
    broker.flushdb()
    services.fan_out_pending()
    services.dispatch_due()
    delivery = Delivery.objects.get()
    assert delivery.status == "retrying"
    assert (delivery.next_attempt_at - delivery.updated_at).total_seconds() > 5000
    assert queued_messages(broker) == 0
    assert not broker.exists("unacked")
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] >= 3600


def test_rolled_back_event_enqueues_nothing(tenant, broker):
    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        with transaction.atomic():
            event_services.accept_event(tenant.tenant, "order.created", {"n": 1})
            raise Abort()
    assert Event.objects.count() == 0
    assert queued_messages(broker) == 0


def test_enqueue_happens_only_after_commit(tenant, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = tenant.send_event()
    assert response.status_code == 202
    assert queued_messages(broker) == 0
    assert len(callbacks) == 1
    callbacks[0]()
    assert queued_messages(broker) == 1


@contextlib.contextmanager
def broker_at(url: str):
    """Send this process's enqueues to `url`, then restore the original broker and pools untouched.

    Celery reads the publish address from `broker_write_url`; the namespaced Django setting shadows
    a change to `broker_url`.
    """
    original = (app.conf.broker_write_url, app._pool, app.amqp._producer_pool)
    app.conf.broker_write_url = url
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_write_url, app._pool, app.amqp._producer_pool = original


@pytest.fixture
def broker_down():
    """Point enqueues at a port where nothing listens."""
    with broker_at("redis://127.0.0.1:1/0"):
        yield


@pytest.fixture
def silent_broker():
    """A listener that accepts connections and never responds, as a wedged Redis would."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    with broker_at(f"redis://127.0.0.1:{listener.getsockname()[1]}/0"):
        yield
    stop.set()
    thread.join(1)
    for conn in accepted:
        conn.close()
    listener.close()


def test_silent_broker_does_not_hang_the_api(tenant, silent_broker):
    started = time.monotonic()
    response = tenant.send_event()
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert elapsed < 10
    assert Event.objects.filter(id=response.json()["id"], fanned_out_at__isnull=True).exists()

    started = time.monotonic()
    health = tenant.client.get("/health")
    assert health.status_code == 503
    assert health.json()["checks"]["broker"] == "failed"
    assert time.monotonic() - started < 10


@pytest.mark.slow
def test_event_survives_broker_outage(make_tenant, receiver, broker, start_worker, broker_down):
    tenant = make_tenant("shop", **UNLIMITED)
    tenant.create_endpoint(receiver.url("/late"))
    response = tenant.send_event()
    assert response.status_code == 202
    assert Event.objects.filter(id=response.json()["id"], fanned_out_at__isnull=True).exists()
    assert queued_messages(broker) == 0

    start_worker(env=FAST_WORKER, beat=True)
    (request,) = receiver.wait_for(1, timeout=60)
    assert request.headers["webhook-id"] == response.json()["id"]


def expire_lease(delivery: Delivery, round_attempts: int) -> None:
    Delivery.objects.filter(id=delivery.id).update(
        status="in_flight", round_attempts=round_attempts, attempt_count=round_attempts,
        lease_token=uuid.uuid4(), lease_expires_at=timezone.now() - dt.timedelta(seconds=1),
    )


def test_lost_attempt_counts_against_budget(tenant, receiver, settings):
    settings.DELIVERY_MAX_RETRIES = 2
    tenant.create_endpoint(receiver.url("/lost"))
    tenant.send_event()
    services.fan_out_pending()
    delivery = Delivery.objects.get()

    expire_lease(delivery, round_attempts=0)
    assert services.release_expired_leases() == 1
    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert delivery.attempt_count == 1
    assert delivery.last_error == services.LOST_ATTEMPT_ERROR
    assert delivery.next_attempt_at <= timezone.now()

    expire_lease(delivery, round_attempts=2)
    assert services.release_expired_leases() == 1
    delivery.refresh_from_db()
    assert delivery.status == "dead"
    assert delivery.dead_reason == "retries_exhausted"
    assert delivery.attempt_count == 3
    assert receiver.received() == []

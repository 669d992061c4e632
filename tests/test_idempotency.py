"""Idempotency-Key on POST /v1/events: replay, reuse with another body, races, expiry and release."""

import datetime as dt
import hashlib
import json

import pytest
import requests
import time_machine
from django.utils import timezone

from events.models import Event
from limits import purge
from limits.models import IdempotencyKey
from tests.live_client import post_event, send_concurrently

BODY = json.dumps({"type": "order.created", "payload": {"n": 1}}).encode()
OTHER_BODY = json.dumps({"type": "order.created", "payload": {"n": 2}}).encode()


def post(handle, body: bytes = BODY, key: str | None = "k-123"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return handle.client.post("/v1/events", body, content_type="application/json", **headers)


def test_repeat_replays_first_response(tenant):
    first = post(tenant)
    second = post(tenant)

    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first
    assert second.status_code == 202
    assert second["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    assert Event.objects.filter(tenant=tenant.tenant).count() == 1


def test_different_body_is_rejected(tenant):
    post(tenant)
    reused = post(tenant, OTHER_BODY)

    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert "k-123" in reused.json()["detail"]
    assert Event.objects.filter(tenant=tenant.tenant).count() == 1


def test_body_bytes_form_the_fingerprint(tenant):
    """The same JSON with other spacing is another body, so the key cannot be reused for it."""
    post(tenant)
    spaced = post(tenant, BODY.replace(b":", b": "))

    assert spaced.status_code == 422


def test_other_tenant_gets_own_event(make_tenant):
    first, second = make_tenant("first"), make_tenant("second")

    one = post(first)
    two = post(second)

    assert one.status_code == two.status_code == 202
    assert "Idempotent-Replayed" not in two
    assert one.json()["id"] != two.json()["id"]
    assert Event.objects.count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "new\nline", "\x7f"])
def test_malformed_key_is_rejected(tenant, key):
    response = tenant.client.post("/v1/events", BODY, content_type="application/json",
                                  HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert Event.objects.count() == 0


@pytest.mark.parametrize("key", ["a", "x" * 255, "order 42/attempt:1 ~!"])
def test_key_bounds_are_accepted(tenant, key):
    assert post(tenant, key=key).status_code == 202


def test_expired_key_makes_new_event(tenant):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        first = post(tenant)
    with time_machine.travel(start + dt.timedelta(hours=23, minutes=59), tick=False):
        within = post(tenant)
    with time_machine.travel(start + dt.timedelta(hours=24, seconds=1), tick=False):
        after = post(tenant)
        after_replay = post(tenant)

    assert within["Idempotent-Replayed"] == "true"
    assert after.status_code == 202
    assert "Idempotent-Replayed" not in after
    assert after.json()["id"] != first.json()["id"]
    assert after_replay.json()["id"] == after.json()["id"]
    assert Event.objects.filter(tenant=tenant.tenant).count() == 2


def test_expired_key_accepts_another_body(tenant):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        post(tenant)
    with time_machine.travel(start + dt.timedelta(hours=25), tick=False):
        response = post(tenant, OTHER_BODY)

    assert response.status_code == 202


def test_failed_request_releases_key(tenant):
    """A first request rejected by a rule leaves the key free for a corrected request."""
    bad = post(tenant, json.dumps({"type": "bad type!", "payload": {}}).encode())
    good = post(tenant, BODY)

    assert bad.status_code == 400
    assert good.status_code == 202
    assert "Idempotent-Replayed" not in good
    assert IdempotencyKey.objects.get().status == "completed"


def test_rate_limited_request_releases_key(tenant):
    tenant.tenant.events_per_minute = 0
    tenant.tenant.save()
    limited = post(tenant)
    tenant.tenant.events_per_minute = 10
    tenant.tenant.save()
    retried = post(tenant)

    assert limited.status_code == 429
    assert retried.status_code == 202


def test_in_progress_key_gets_conflict(tenant):
    """A claim held by a running request answers 409 with Retry-After; a stale claim is taken over."""
    claim_time = timezone.now()
    IdempotencyKey.objects.create(
        tenant=tenant.tenant, key="k-123", fingerprint=hashlib.sha256(BODY).hexdigest(), status="in_progress",
        claim_token="00000000-0000-0000-0000-000000000001", locked_until=claim_time + dt.timedelta(seconds=30),
        created_at=claim_time, expires_at=claim_time + dt.timedelta(hours=24),
    )
    with time_machine.travel(claim_time + dt.timedelta(seconds=5), tick=False):
        busy = post(tenant)
    with time_machine.travel(claim_time + dt.timedelta(seconds=31), tick=False):
        taken_over = post(tenant)

    assert busy.status_code == 409
    assert busy.json()["code"] == "idempotency_key_in_progress"
    assert busy["Retry-After"] == "1"
    assert taken_over.status_code == 202
    assert Event.objects.count() == 1


@pytest.mark.slow
def test_concurrent_identical_posts_make_one_event(live_server, tenant, broker):
    """50 racing posts with one key create one event; every answer is a 202, a replay or a 409."""
    responses = send_concurrently(50, post_event(live_server.url, tenant.key, BODY, **{"Idempotency-Key": "k-123"}))

    assert Event.objects.filter(tenant=tenant.tenant).count() == 1
    event_id = str(Event.objects.get().id)
    for response in responses:
        assert response.status_code in (202, 409), response.text
        if response.status_code == 409:
            assert response.headers["Retry-After"] == "1"
        else:
            assert response.json()["id"] == event_id
    originals = [r for r in responses if r.status_code == 202 and "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1

    third = post_event(live_server.url, tenant.key, BODY, **{"Idempotency-Key": "k-123"})(requests.Session())
    assert third.status_code == 202
    assert third.headers["Idempotent-Replayed"] == "true"
    assert third.json()["id"] == event_id
    assert Event.objects.count() == 1


def test_purge_deletes_expired_keys(tenant):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        post(tenant, key="old")
    with time_machine.travel(start + dt.timedelta(hours=20), tick=False):
        post(tenant, key="new")
    with time_machine.travel(start + dt.timedelta(hours=25), tick=False):
        deleted = purge.purge_expired()

    assert deleted["idempotency_keys"] == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]

"""The delivery pipeline: fan-out, claiming due work, sending a batch and recording the outcome."""

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from deliveries import http, retry
from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus, WAITING_STATUSES
from endpoints import services as endpoint_services
from endpoints.secrets import signature_header
from events.models import Event
from limits import usage

logger = logging.getLogger(__name__)

# Events one fan-out task takes: the one it was sent for plus others still waiting.
FAN_OUT_BATCH_SIZE = 100
# Most dispatch tasks one sweep enqueues, so a long backlog does not flood the broker.
MAX_DISPATCH_TASKS_PER_SWEEP = 8
# Seconds an accepted event may wait for its fan-out message before the sweep sends another.
FAN_OUT_GRACE_SECONDS = 5
# last_error of a delivery whose worker died while it was in flight.
LOST_ATTEMPT_ERROR = "worker lost during the attempt; outcome unknown"
RESERVED_HEADERS_SENT = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")


def fan_out_pending(event_id=None) -> list:
    """Create deliveries for the given event and other events not yet fanned out; returns new delivery ids."""
    with transaction.atomic():
        events = _claim_events(event_id)
        created = _create_deliveries(events)
        Event.objects.filter(id__in=[event.id for event in events]).update(fanned_out_at=timezone.now())
    if events:
        logger.info("fanned out %d events into %d deliveries", len(events), len(created))
    return created


def _claim_events(event_id) -> list[Event]:
    waiting = Event.objects.filter(fanned_out_at__isnull=True).select_for_update(skip_locked=True)
    picked = list(waiting.filter(id=event_id)) if event_id else []
    others = waiting.exclude(id=event_id) if event_id else waiting
    picked.extend(others.order_by("created_at")[: FAN_OUT_BATCH_SIZE - len(picked)])
    return picked


def _create_deliveries(events: list[Event]) -> list:
    """Insert one pending delivery per event and matching endpoint, with one query per batch for each table."""
    live = endpoint_services.live_endpoints_by_tenant({event.tenant_id for event in events})
    now = timezone.now()
    rows = [
        Delivery(
            tenant_id=event.tenant_id, event=event, endpoint=endpoint, status=DeliveryStatus.PENDING,
            next_attempt_at=now,
        )
        for event in events
        for endpoint in live[event.tenant_id]
        if endpoint_services.type_matches(endpoint.event_types, event.type)
    ]
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return [row.id for row in rows]


def claim_due(limit: int, ids=None) -> tuple[uuid.UUID, list[Delivery]]:
    """Lease up to `limit` due deliveries to this worker with one conditional update."""
    now = timezone.now()
    token = uuid.uuid4()
    due = Delivery.objects.filter(status__in=WAITING_STATUSES, next_attempt_at__lte=now)
    if ids is not None:
        due = due.filter(id__in=list(ids))
    with transaction.atomic():
        picked = list(
            due.order_by("next_attempt_at").select_for_update(skip_locked=True).values_list("id", flat=True)[:limit]
        )
        # Re-checking the status in the UPDATE keeps the claim safe on databases without row locks.
        due.filter(id__in=picked).update(
            status=DeliveryStatus.IN_FLIGHT, lease_token=token, updated_at=now,
            lease_expires_at=now + dt.timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS + settings.DELIVERY_LEASE_MARGIN_SECONDS),
        )
    # lease_token has no index, so the claimed rows are read back by primary key.
    claimed = Delivery.objects.filter(id__in=picked, lease_token=token).select_related("event", "endpoint")
    return token, list(claimed)


@dataclass
class Prepared:
    delivery: Delivery
    request: http.OutgoingRequest


def dispatch_due(limit: int | None = None, ids=None) -> int:
    """Claim a batch of due deliveries, send them concurrently and record each outcome; returns the claim size."""
    token, claimed = claim_due(limit or settings.DELIVERY_BATCH_SIZE, ids)
    if not claimed:
        return 0
    sendable = _close_unsendable(token, claimed)
    sendable = _defer_over_attempt_quota(token, sendable)
    prepared = _prepare(sendable)
    # NOTE: outcomes are recorded when the slowest request of the batch ends. One receiver that runs
    # to DELIVERY_TIMEOUT_SECONDS keeps this pool process busy that long, so size worker concurrency
    # for the slow receivers expected at once.
    results = http.send_many([item.request for item in prepared])
    _record(token, prepared, results)
    return len(claimed)


def _close_unsendable(token, claimed: list[Delivery]) -> list[Delivery]:
    """Cancel deliveries whose endpoint was deleted or disabled since they were queued."""
    closed = [delivery for delivery in claimed if not delivery.endpoint.is_active]
    if closed:
        Delivery.objects.filter(id__in=[d.id for d in closed], lease_token=token).update(
            status=DeliveryStatus.CANCELLED, next_attempt_at=None, lease_token=None, lease_expires_at=None,
            last_error="endpoint deleted or disabled", updated_at=timezone.now(),
        )
        logger.info("cancelled %d deliveries of deleted or disabled endpoints", len(closed))
    return [delivery for delivery in claimed if delivery.endpoint.is_active]


def _defer_over_attempt_quota(token, claimed: list[Delivery]) -> list[Delivery]:
    """Put back deliveries past their tenant's monthly attempt limit, unchanged but for a later time.

    The limit is counted as attempts are granted here; deferred deliveries keep their status
    and attempt count and are claimed again after `usage.deferred_until`.
    """
    wanted: dict = {}
    for delivery in claimed:
        wanted[delivery.tenant_id] = wanted.get(delivery.tenant_id, 0) + 1
    now = timezone.now()
    granted = usage.reserve_attempts(wanted, now)
    sendable, deferred = [], []
    for delivery in claimed:
        if granted[delivery.tenant_id] > 0:
            granted[delivery.tenant_id] -= 1
            sendable.append(delivery)
        else:
            deferred.append(delivery)
    if deferred:
        _put_back(token, deferred, usage.deferred_until(now), now)
    return sendable


def _put_back(token, deferred: list[Delivery], retry_at: dt.datetime, now: dt.datetime) -> None:
    waiting_status = Case(When(attempt_count=0, then=Value(DeliveryStatus.PENDING)),
                          default=Value(DeliveryStatus.RETRYING))
    Delivery.objects.filter(id__in=[d.id for d in deferred], lease_token=token).update(
        status=waiting_status, next_attempt_at=retry_at, lease_token=None, lease_expires_at=None,
        last_error="deferred: monthly attempt limit reached", updated_at=now,
    )
    logger.info("deferred %d deliveries over their tenant's monthly attempt limit until %s", len(deferred),
                retry_at.isoformat())


def _prepare(deliveries: list[Delivery]) -> list[Prepared]:
    keys = endpoint_services.signing_keys({delivery.endpoint_id for delivery in deliveries})
    timestamp = int(timezone.now().timestamp())
    return [Prepared(delivery, _build_request(delivery, keys[delivery.endpoint_id], timestamp)) for delivery in deliveries]


def _build_request(delivery: Delivery, keys: list[bytes], timestamp: int) -> http.OutgoingRequest:
    """Sign the stored body for this attempt; our headers are set last so custom ones cannot replace them."""
    body = delivery.event.body.encode("utf-8")
    message_id = str(delivery.event_id)
    headers = {name: value for name, value in delivery.endpoint.headers.items()
               if name.lower() not in RESERVED_HEADERS_SENT}
    headers.update({
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(keys, message_id, timestamp, body),
    })
    return http.OutgoingRequest(url=delivery.endpoint.url, body=body, headers=headers)


def _record(token, prepared: list[Prepared], results: list) -> None:
    now = timezone.now()
    attempts = [_attempt_row(item.delivery, result) for item, result in zip(prepared, results)]
    succeeded = [(item.delivery, result) for item, result in zip(prepared, results) if result.succeeded]
    with transaction.atomic():
        _record_successes(token, succeeded, now)
        for item, result in zip(prepared, results):
            if not result.succeeded:
                _apply_outcome(token, item.delivery, result, now)
        DeliveryAttempt.objects.bulk_create(attempts)


def _record_successes(token, succeeded: list[tuple[Delivery, http.AttemptResult]], now: dt.datetime) -> None:
    """Mark succeeded deliveries with one UPDATE per status code rather than one per delivery.

    The counters are incremented in SQL: while this worker holds the lease no other writer
    changes them, so the result equals the per-row values `_apply_outcome` would write.
    """
    ids_by_status: dict[int, list] = {}
    for delivery, result in succeeded:
        ids_by_status.setdefault(result.status_code, []).append(delivery.id)
    for status_code, ids in ids_by_status.items():
        updated = Delivery.objects.filter(id__in=ids, lease_token=token).update(
            status=DeliveryStatus.SUCCEEDED, succeeded_at=now, next_attempt_at=None, last_error="",
            attempt_count=F("attempt_count") + 1, round_attempts=F("round_attempts") + 1,
            last_status_code=status_code, lease_token=None, lease_expires_at=None, updated_at=now,
        )
        if updated < len(ids):
            _log_lost_leases(ids, now)


def _log_lost_leases(ids: list, now: dt.datetime) -> None:
    recorded = Delivery.objects.filter(id__in=ids, status=DeliveryStatus.SUCCEEDED, succeeded_at=now)
    lost = set(ids) - set(recorded.values_list("id", flat=True))
    for delivery_id in sorted(lost, key=str):
        logger.warning("delivery %s lease was lost before its outcome was recorded", delivery_id)


def _attempt_row(delivery: Delivery, result) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=delivery.id, tenant_id=delivery.tenant_id, number=delivery.attempt_count + 1,
        started_at=result.started_at, duration_ms=result.duration_ms, status_code=result.status_code,
        error_kind=result.error_kind or "", error_message=result.error_message[:500],
        response_body=result.response_body, response_truncated=result.truncated,
    )


def _apply_outcome(token, delivery: Delivery, result, now: dt.datetime) -> None:
    fields = {
        "attempt_count": delivery.attempt_count + 1, "round_attempts": delivery.round_attempts + 1,
        "last_status_code": result.status_code, "last_error": result.error_message[:500],
        "lease_token": None, "lease_expires_at": None, "updated_at": now,
    }
    fields.update(_next_state(delivery, result, fields["round_attempts"], now))
    updated = Delivery.objects.filter(id=delivery.id, lease_token=token).update(**fields)
    if not updated:
        logger.warning("delivery %s lease was lost before its outcome was recorded", delivery.id)
    elif fields["status"] == DeliveryStatus.DEAD:
        logger.info("delivery %s dead: %s", delivery.id, fields["dead_reason"])


def _next_state(delivery: Delivery, result, round_attempts: int, now: dt.datetime) -> dict:
    if result.error_kind is None:
        return {"status": DeliveryStatus.SUCCEEDED, "succeeded_at": now, "next_attempt_at": None, "last_error": ""}
    if result.error_kind == "blocked_destination":
        return _dead("blocked_destination", now)
    if result.status_code == 410:
        endpoint_services.disable_endpoint(delivery.endpoint_id, "gone")
        return _dead("gone", now)
    if round_attempts > settings.DELIVERY_MAX_RETRIES:
        return _dead("retries_exhausted", now)
    return {
        "status": DeliveryStatus.RETRYING,
        "next_attempt_at": retry.next_attempt_time(round_attempts, now, result.status_code, result.retry_after),
    }


def _dead(reason: str, now: dt.datetime) -> dict:
    return {"status": DeliveryStatus.DEAD, "dead_reason": reason, "dead_at": now, "next_attempt_at": None}


def release_expired_leases() -> int:
    """Put in-flight deliveries whose worker vanished back in the queue, due now.

    The lost attempt counts against the retry budget, as its request may have been sent. So a
    delivery that kills its worker every time (a poison message) goes dead instead of looping.
    """
    now = timezone.now()
    expired = Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT, lease_expires_at__lte=now)
    lost = {
        "attempt_count": F("attempt_count") + 1, "round_attempts": F("round_attempts") + 1,
        "last_status_code": None, "last_error": LOST_ATTEMPT_ERROR,
        "lease_token": None, "lease_expires_at": None, "updated_at": now,
    }
    exhausted = expired.filter(round_attempts__gte=settings.DELIVERY_MAX_RETRIES).update(
        **lost, **_dead("retries_exhausted", now),
    )
    if exhausted:
        logger.warning("%d deliveries dead after their worker was lost on the last attempt", exhausted)
    return exhausted + expired.update(**lost, status=DeliveryStatus.RETRYING, next_attempt_at=now)


def sweep() -> dict:
    """Find work whose broker message may be lost and return how many dispatch and fan-out tasks to send."""
    released = release_expired_leases()
    now = timezone.now()
    cap = MAX_DISPATCH_TASKS_PER_SWEEP * settings.DELIVERY_BATCH_SIZE
    due = Delivery.objects.filter(status__in=WAITING_STATUSES, next_attempt_at__lte=now)[:cap].count()
    stale = now - dt.timedelta(seconds=FAN_OUT_GRACE_SECONDS)
    unfanned = Event.objects.filter(fanned_out_at__isnull=True, created_at__lte=stale).exists()
    if released:
        logger.warning("released %d deliveries whose lease expired", released)
    dispatch_tasks = -(-due // settings.DELIVERY_BATCH_SIZE)
    return {"released": released, "due": due, "dispatch_tasks": dispatch_tasks, "fan_out": unfanned}

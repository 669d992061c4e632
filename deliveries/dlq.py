"""The dead-letter queue: selecting dead deliveries and replaying them with a fresh retry budget.

The API, `manage.py replay_dlq` and the Django admin action all replay through `replay_delivery`
or `replay_matching`, so the three paths behave the same.
"""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus
from dispatcher.problems import conflict
from dispatcher.queueing import DISPATCH_TASK, send_task_after_commit

logger = logging.getLogger(__name__)

# Dead deliveries one bulk-replay step reads, resets and enqueues in one transaction.
REPLAY_BATCH_SIZE = 500

# A single replay may resend any delivery in these statuses; the bulk DLQ replay takes dead ones only.
FINISHED_STATUSES = (DeliveryStatus.DEAD, DeliveryStatus.SUCCEEDED, DeliveryStatus.CANCELLED)

SKIP_ENDPOINT_DISABLED = "endpoint_disabled"
SKIP_ENDPOINT_DELETED = "endpoint_deleted"


@dataclass
class DlqFilter:
    """Criteria that select dead deliveries. A criterion left as None matches every delivery."""

    tenant_id: object = None
    endpoint_id: object = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    reason: str | None = None
    # A list of delivery ids, or a queryset of `id` values such as an admin selection.
    ids: list | QuerySet | None = None


@dataclass
class ReplayResult:
    """Counts of one bulk replay: `matched` dead deliveries, of which `replayed` went back to pending."""

    matched: int = 0
    replayed: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: {SKIP_ENDPOINT_DISABLED: 0, SKIP_ENDPOINT_DELETED: 0})
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"matched": self.matched, "replayed": self.replayed, "skipped": dict(self.skipped),
                "dry_run": self.dry_run}


def dead_deliveries(selection: DlqFilter) -> QuerySet:
    """Return the dead deliveries a filter selects. `since` and `until` bound the time of death."""
    deliveries = Delivery.objects.filter(status=DeliveryStatus.DEAD)
    if selection.tenant_id is not None:
        deliveries = deliveries.filter(tenant_id=selection.tenant_id)
    if selection.endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=selection.endpoint_id)
    if selection.since is not None:
        deliveries = deliveries.filter(dead_at__gte=selection.since)
    if selection.until is not None:
        deliveries = deliveries.filter(dead_at__lt=selection.until)
    if selection.reason:
        deliveries = deliveries.filter(dead_reason=selection.reason)
    if selection.ids is not None:
        ids = selection.ids if isinstance(selection.ids, QuerySet) else list(selection.ids)
        deliveries = deliveries.filter(id__in=ids)
    return deliveries


def skip_reason(endpoint) -> str | None:
    """Return why a delivery to this endpoint cannot be replayed, or None when it can."""
    if endpoint.deleted_at is not None:
        return SKIP_ENDPOINT_DELETED
    if not endpoint.enabled:
        return SKIP_ENDPOINT_DISABLED
    return None


def replay_delivery(delivery: Delivery) -> Delivery:
    """Send one finished delivery again: dead, succeeded or cancelled.

    Raises a 409 Problem while the delivery is still waiting or in flight, or when its endpoint
    cannot receive.
    """
    reason = skip_reason(delivery.endpoint)
    if reason is not None:
        raise conflict(_endpoint_conflict(delivery, reason), reason)
    with transaction.atomic():
        replayed = _reset([delivery.id], FINISHED_STATUSES)
    if not replayed:
        delivery.refresh_from_db(fields=["status"])
        raise conflict(
            f"delivery {delivery.id} is {delivery.status}; only a dead, succeeded or cancelled delivery can be "
            "replayed, so wait until it finishes",
            "delivery_in_progress",
        )
    logger.info("delivery %s replayed for tenant %s", delivery.id, delivery.tenant_id)
    delivery.refresh_from_db()
    return delivery


def _endpoint_conflict(delivery: Delivery, reason: str) -> str:
    if reason == SKIP_ENDPOINT_DELETED:
        return f"endpoint {delivery.endpoint_id} is deleted, so delivery {delivery.id} cannot be replayed"
    return (
        f"endpoint {delivery.endpoint_id} is disabled, so delivery {delivery.id} cannot be replayed. "
        f"Enable it with PATCH /v1/endpoints/{delivery.endpoint_id} and replay again"
    )


def replay_matching(selection: DlqFilter, limit: int | None = None, dry_run: bool = False,
                    progress: Callable[[ReplayResult], None] | None = None) -> ReplayResult:
    """Replay up to `limit` matching dead deliveries, oldest death first, skipping unusable endpoints."""
    result = ReplayResult(dry_run=dry_run)
    after = None
    while limit is None or result.matched < limit:
        size = REPLAY_BATCH_SIZE if limit is None else min(REPLAY_BATCH_SIZE, limit - result.matched)
        batch = _next_batch(selection, after, size)
        if not batch:
            break
        after = (batch[-1][1], batch[-1][0])
        _replay_batch(batch, result)
        if progress is not None:
            progress(result)
    logger.info("DLQ replay matched %d, replayed %d, skipped %s (dry run: %s)",
                result.matched, result.replayed, result.skipped, dry_run)
    return result


def _next_batch(selection: DlqFilter, after: tuple | None, size: int) -> list[tuple]:
    """Return (id, dead_at, skip reason) rows after the keyset position `after`, oldest death first."""
    rows = dead_deliveries(selection)
    if after is not None:
        dead_at, last_id = after
        rows = rows.filter(Q(dead_at__gt=dead_at) | Q(dead_at=dead_at, id__gt=last_id))
    rows = rows.order_by("dead_at", "id").values_list("id", "dead_at", "endpoint__enabled", "endpoint__deleted_at")
    return [(row[0], row[1], _skip_from_columns(row[2], row[3])) for row in rows[:size]]


def _skip_from_columns(enabled: bool, deleted_at) -> str | None:
    if deleted_at is not None:
        return SKIP_ENDPOINT_DELETED
    return None if enabled else SKIP_ENDPOINT_DISABLED


def _replay_batch(batch: list[tuple], result: ReplayResult) -> None:
    result.matched += len(batch)
    replayable = []
    for delivery_id, _dead_at, reason in batch:
        if reason is None:
            replayable.append(delivery_id)
        else:
            result.skipped[reason] += 1
    if replayable and not result.dry_run:
        with transaction.atomic():
            result.replayed += _reset(replayable, (DeliveryStatus.DEAD,))


def _reset(ids: list, statuses: tuple) -> int:
    """Put deliveries in one of `statuses` back to pending, due now. Call it inside a transaction.

    The row lock and the status condition make this the claim: of two concurrent replays of one
    delivery exactly one resets it. The dispatch task is enqueued once the transaction commits.
    """
    now = timezone.now()
    replayable = Delivery.objects.filter(id__in=ids, status__in=statuses)
    reset = list(replayable.select_for_update().values_list("id", flat=True))
    count = replayable.filter(id__in=reset).update(
        status=DeliveryStatus.PENDING, round_attempts=0, next_attempt_at=now, dead_reason="", dead_at=None,
        updated_at=now,
    )
    if count:
        _enqueue_after_commit([str(delivery_id) for delivery_id in reset])
    return count


def _enqueue_after_commit(ids: list[str]) -> None:
    size = settings.DELIVERY_BATCH_SIZE
    for start in range(0, len(ids), size):
        transaction.on_commit(partial(send_task_after_commit, DISPATCH_TASK, ids[start:start + size]))

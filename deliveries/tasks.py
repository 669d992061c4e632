"""Thin Celery wrappers over the delivery services. Tasks take ids and are safe to run twice."""

import logging

from celery import shared_task
from django.conf import settings

from deliveries import retention, services
from dispatcher.queueing import DISPATCH_TASK, FAN_OUT_TASK, send_task_after_commit

logger = logging.getLogger(__name__)

RETENTION_TASK = "deliveries.run_retention"


@shared_task(name=FAN_OUT_TASK)
def fan_out_event(event_id: str | None = None) -> int:
    created = [str(delivery_id) for delivery_id in services.fan_out_pending(event_id)]
    size = settings.DELIVERY_BATCH_SIZE
    chunks = [created[start:start + size] for start in range(0, len(created), size)]
    # Other worker processes take the later chunks while this one sends the first.
    for chunk in chunks[1:]:
        send_task_after_commit(DISPATCH_TASK, chunk)
    if chunks:
        services.dispatch_due(ids=chunks[0])
    return len(created)


@shared_task(name=DISPATCH_TASK)
def dispatch_due(ids: list[str] | None = None) -> int:
    claimed = services.dispatch_due(ids=ids)
    if ids is None and claimed >= settings.DELIVERY_BATCH_SIZE:
        # A full batch suggests more is due; keep draining without waiting for the sweep.
        send_task_after_commit(DISPATCH_TASK)
    return claimed


@shared_task(name="deliveries.sweep")
def sweep() -> dict:
    found = services.sweep()
    for _ in range(found["dispatch_tasks"]):
        send_task_after_commit(DISPATCH_TASK)
    if found["fan_out"]:
        send_task_after_commit(FAN_OUT_TASK)
    return found


@shared_task(name=RETENTION_TASK)
def run_retention() -> dict:
    return retention.run_retention().counts

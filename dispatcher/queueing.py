"""Enqueueing by task name, so apps hand work on without importing each other's tasks."""

import logging

from dispatcher.celery import app

logger = logging.getLogger(__name__)

FAN_OUT_TASK = "deliveries.fan_out_event"
DISPATCH_TASK = "deliveries.dispatch_due"


def send_task_after_commit(name: str, *args) -> bool:
    """Send a task; a broker failure is logged, not raised, because the sweep re-enqueues the work."""
    try:
        app.send_task(name, args=list(args))
    except Exception as error:  # noqa: BLE001 - any broker failure; the database row is the record
        logger.warning("enqueue of %s %s failed, the sweep will retry: %s", name, args, error)
        return False
    return True

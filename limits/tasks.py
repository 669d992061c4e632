"""Thin Celery wrappers over the limits services."""

from celery import shared_task

from limits import purge


@shared_task(name="limits.purge_expired")
def purge_expired() -> dict[str, int]:
    return purge.purge_expired()

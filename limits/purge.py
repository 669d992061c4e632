"""Deletion of expired idempotency keys and of rate-limit windows that have ended."""

import datetime as dt
import logging

from django.utils import timezone

from limits.models import IdempotencyKey, RateLimitCounter

logger = logging.getLogger(__name__)

# Rows deleted per statement, so a large backlog never holds long locks.
PURGE_BATCH_SIZE = 5000
# Counters are kept this long after their window starts; the longest window is one hour.
COUNTER_KEEP = dt.timedelta(days=1)


def purge_expired() -> dict[str, int]:
    """Delete expired idempotency keys and old rate-limit counters; return the rows deleted of each."""
    now = timezone.now()
    keys = _delete_in_batches(IdempotencyKey.objects.filter(expires_at__lte=now), "pk")
    counters = _delete_in_batches(RateLimitCounter.objects.filter(window_start__lt=now - COUNTER_KEEP),
                                  "counter_key")
    logger.info("purged %d expired idempotency keys and %d old rate-limit counters", keys, counters)
    return {"idempotency_keys": keys, "rate_limit_counters": counters}


def _delete_in_batches(queryset, key_field: str) -> int:
    deleted = 0
    while True:
        batch = list(queryset.values_list(key_field, flat=True)[:PURGE_BATCH_SIZE])
        if not batch:
            return deleted
        count, _ = queryset.model.objects.filter(**{f"{key_field}__in": batch}).delete()
        deleted += count

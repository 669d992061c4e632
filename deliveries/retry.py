"""When to try a failed delivery again: the configured schedule, jitter and Retry-After."""

import datetime as dt
import email.utils
import random

from django.conf import settings

# Each scheduled delay is spread by this fraction either way, so retries of one outage spread out.
RETRY_JITTER_FRACTION = 0.2
# A receiver's Retry-After may push a retry back by at most this many seconds (one hour).
RETRY_AFTER_CAP_SECONDS = 3600
# Statuses whose Retry-After header is honoured.
RETRY_AFTER_STATUSES = (429, 503)


def scheduled_delay(round_attempts: int) -> float:
    """Return the seconds before the next try after `round_attempts` failed tries, with jitter."""
    schedule = settings.DELIVERY_RETRY_SCHEDULE
    base = schedule[min(round_attempts, len(schedule)) - 1]
    return base * random.uniform(1 - RETRY_JITTER_FRACTION, 1 + RETRY_JITTER_FRACTION)


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Return the delay a Retry-After value requests, in seconds, or None when it is absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value[:10]))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def next_attempt_time(round_attempts: int, now: dt.datetime, status_code: int | None,
                      retry_after: str | None) -> dt.datetime:
    """Return when to retry: the scheduled delay, or Retry-After on 429/503 when that is later (capped)."""
    delay = scheduled_delay(round_attempts)
    if status_code in RETRY_AFTER_STATUSES:
        requested = parse_retry_after(retry_after, now)
        if requested is not None:
            delay = max(delay, min(requested, RETRY_AFTER_CAP_SECONDS))
    return now + dt.timedelta(seconds=delay)

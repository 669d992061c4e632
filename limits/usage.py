"""Monthly usage per tenant: events accepted and delivery attempts, counted in `usage_counters`.

Months are calendar months in UTC. Events over the limit are rejected (429 until the month
turns); attempts over the limit are not granted, and the delivery pipeline defers them.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from limits.models import MonthlyUsage, TransactionNow
from limits.services import WindowCount, limit_for, rate_limited
from tenants.models import Tenant

logger = logging.getLogger(__name__)

_COUNT_EVENT_SQL = """
INSERT INTO usage_counters (tenant_id, month, events, attempts)
VALUES (%s, %s, 1, 0)
ON CONFLICT (tenant_id, month) DO UPDATE
SET events = usage_counters.events + 1, updated_at = CURRENT_TIMESTAMP
RETURNING events
"""

_ENSURE_ROW_SQL = """
INSERT INTO usage_counters (tenant_id, month, events, attempts)
VALUES (%s, %s, 0, 0)
ON CONFLICT (tenant_id, month) DO NOTHING
"""


def month_start(moment: dt.datetime) -> dt.datetime:
    """Return the first instant of the UTC calendar month that contains `moment`."""
    return moment.astimezone(dt.timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: dt.datetime) -> dt.datetime:
    return (month_start(moment) + dt.timedelta(days=32)).replace(day=1)


def _tenant_param(tenant_id):
    # UUIDs are stored as 32 hex characters on SQLite and as uuid on PostgreSQL.
    return MonthlyUsage._meta.get_field("tenant").get_db_prep_value(tenant_id, connection)


def count_event(tenant: Tenant, now: dt.datetime) -> int:
    """Count one event this month; raise a 429 Problem when that passes the monthly limit.

    Call it inside the transaction that stores the event: the upsert locks the tenant's row
    until commit, so concurrent events are counted one after another, and a rejected event
    rolls its count back with the rest of the transaction.
    """
    month = month_start(now).date()
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_EVENT_SQL, [_tenant_param(tenant.id), month])
        count = cursor.fetchone()[0]

    limit = limit_for(tenant, "monthly_event_limit")
    if count > limit:
        logger.info("tenant %s reached its monthly event limit of %d", tenant.id, limit)
        window = WindowCount(limit, count, next_month_start(now))
        raise rate_limited(window, f"monthly event limit of {limit} reached; sending resumes when the month "
                           "turns (UTC) or the operator raises monthly_event_limit", "monthly_event_limit_reached")
    return count


def reserve_attempts(requested: dict, now: dt.datetime) -> dict:
    """Grant delivery attempts per tenant id within each tenant's monthly attempt limit.

    `requested` maps a tenant id to the attempts a worker is about to make; the result maps it
    to how many of them may be made now. Granted attempts are counted at once.
    """
    tenants = Tenant.objects.in_bulk(list(requested))
    month = month_start(now).date()
    return {tenant_id: _reserve(tenants.get(tenant_id), month, wanted) for tenant_id, wanted in requested.items()}


def _reserve(tenant: Tenant | None, month: dt.date, wanted: int) -> int:
    if tenant is None:
        return wanted
    limit = limit_for(tenant, "monthly_attempt_limit")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_ENSURE_ROW_SQL, [_tenant_param(tenant.id), month])
        row = MonthlyUsage.objects.select_for_update().get(tenant=tenant, month=month)
        granted = max(0, min(wanted, limit - row.attempts))
        if granted:
            MonthlyUsage.objects.filter(pk=row.pk).update(attempts=F("attempts") + granted,
                                                          updated_at=TransactionNow())
    if granted < wanted:
        logger.info("tenant %s at its monthly attempt limit of %d: %d of %d attempts deferred",
                    tenant.id, limit, wanted - granted, wanted)
    return granted


def deferred_until(now: dt.datetime) -> dt.datetime:
    """Return when a delivery over its tenant's attempt limit is tried again (the quota is checked then)."""
    retry_at = now + dt.timedelta(seconds=settings.USAGE_DEFERRED_ATTEMPT_SECONDS)
    return min(retry_at, next_month_start(now))


def usage_this_month(tenant: Tenant, now: dt.datetime) -> dict:
    """Return this month's events and attempts with their limits and the reset time."""
    row = MonthlyUsage.objects.filter(tenant=tenant, month=month_start(now).date()).first()
    used = {"events": row.events if row else 0, "attempts": row.attempts if row else 0}
    limits = {"events": limit_for(tenant, "monthly_event_limit"),
              "attempts": limit_for(tenant, "monthly_attempt_limit")}
    usage = {name: {"used": used[name], "limit": limits[name], "remaining": max(0, limits[name] - used[name])}
             for name in used}
    usage["month"] = month_start(now).strftime("%Y-%m")
    usage["resets_at"] = next_month_start(now)
    return usage

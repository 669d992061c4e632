"""Delivery health for a time window: volumes, success rate, latency percentiles, DLQ and backlog.

PostgreSQL computes percentiles with `percentile_cont`. Other databases (the SQLite default of a
fresh checkout) get the same linear interpolation in Python over at most PYTHON_PERCENTILE_SAMPLE
of the newest values. The response is documented in docs/metrics.md.
"""

import datetime as dt

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, FloatField, Max, Min, QuerySet
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus, WAITING_STATUSES
from endpoints.models import Endpoint
from events.models import Event

WINDOWS = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7)}
ATTEMPT_PERCENTILES = (0.5, 0.95, 0.99)
SUCCESS_LATENCY_PERCENTILES = (0.5, 0.95)
# Values read into Python per percentile set where the database has no percentile_cont.
PYTHON_PERCENTILE_SAMPLE = 10000
# Endpoints listed under failing_endpoints, most failed attempts first.
FAILING_ENDPOINTS_SHOWN = 5


class PercentileCont(Aggregate):
    """PostgreSQL's `percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def interpolated_percentile(ordered: list[float], fraction: float) -> float | None:
    """Return the percentile of sorted values by linear interpolation, as percentile_cont does."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def percentiles(rows: QuerySet, expression, fractions: tuple[float, ...], output_field, newest: str) -> dict:
    """Return {"p50": value, …} of `expression` over `rows`, with None values when there are no rows."""
    names = {fraction: f"p{round(fraction * 100)}" for fraction in fractions}
    if connection.vendor == "postgresql":
        found = rows.aggregate(**{
            name: PercentileCont(expression, fraction, output_field=output_field) for fraction, name in names.items()
        })
        return {name: found[name] for name in names.values()}
    sample = rows.annotate(metric_value=expression).order_by(f"-{newest}").values_list("metric_value", flat=True)
    ordered = sorted(value for value in sample[:PYTHON_PERCENTILE_SAMPLE] if value is not None)
    return {name: interpolated_percentile(ordered, fraction) for fraction, name in names.items()}


def summary(window: str, tenant_id=None) -> dict:
    """Return the delivery health of one tenant, or of every tenant when `tenant_id` is None."""
    now = timezone.now()
    since = now - WINDOWS[window]
    scope = {} if tenant_id is None else {"tenant_id": tenant_id}
    attempts = DeliveryAttempt.objects.filter(started_at__gte=since, **scope)
    return {
        "window": window,
        "since": since,
        "until": now,
        "events_received": Event.objects.filter(created_at__gte=since, **scope).count(),
        "deliveries": _deliveries_by_status(Delivery.objects.filter(created_at__gte=since, **scope)),
        "attempts": _attempt_stats(attempts),
        "event_to_success_ms": _success_latency(Delivery.objects.filter(created_at__gte=since, **scope)),
        "dlq_size": Delivery.objects.filter(status=DeliveryStatus.DEAD, **scope).count(),
        "backlog": _backlog(Delivery.objects.filter(**scope), now),
        "failing_endpoints": _failing_endpoints(attempts),
    }


def _deliveries_by_status(created: QuerySet) -> dict:
    by_status = dict.fromkeys(DeliveryStatus.values, 0)
    for row in created.order_by().values("status").annotate(count=Count("id")):
        by_status[row["status"]] = row["count"]
    return {"total": sum(by_status.values()), "by_status": by_status}


def _attempt_stats(attempts: QuerySet) -> dict:
    total = attempts.count()
    succeeded = attempts.filter(error_kind="").count()
    latency = percentiles(attempts, F("duration_ms"), ATTEMPT_PERCENTILES, FloatField(), "started_at")
    return {
        "total": total,
        "succeeded": succeeded,
        "failed": total - succeeded,
        "success_rate": round(succeeded / total, 4) if total else None,
        "latency_ms": {name: _round_ms(value) for name, value in latency.items()},
    }


def _success_latency(created: QuerySet) -> dict:
    """Percentiles of succeeded_at minus the event's created_at, over deliveries created in the window."""
    succeeded = created.filter(status=DeliveryStatus.SUCCEEDED, succeeded_at__isnull=False)
    elapsed = ExpressionWrapper(F("succeeded_at") - F("event__created_at"), output_field=DurationField())
    found = percentiles(succeeded, elapsed, SUCCESS_LATENCY_PERCENTILES, DurationField(), "succeeded_at")
    return {name: _round_ms(value) for name, value in found.items()}


def _round_ms(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        value = value.total_seconds() * 1000
    return round(float(value), 1)


def _backlog(deliveries: QuerySet, now: dt.datetime) -> dict:
    waiting = deliveries.filter(status__in=WAITING_STATUSES)
    oldest = deliveries.filter(status=DeliveryStatus.PENDING).aggregate(oldest=Min("created_at"))["oldest"]
    return {
        "waiting": waiting.count(),
        "due": waiting.filter(next_attempt_at__lte=now).count(),
        "oldest_pending_age_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
    }


def _failing_endpoints(attempts: QuerySet) -> list[dict]:
    """Return the endpoints with the most failed attempts in the window, each with its latest error."""
    failed = attempts.exclude(error_kind="")
    ranked = list(
        failed.values("delivery__endpoint_id").annotate(failures=Count("id"), last_failed_at=Max("started_at"))
        .order_by("-failures", "-last_failed_at")[:FAILING_ENDPOINTS_SHOWN]
    )
    endpoint_ids = [row["delivery__endpoint_id"] for row in ranked]
    endpoints = Endpoint.objects.in_bulk(endpoint_ids)
    return [_failing_entry(failed, row, endpoints[row["delivery__endpoint_id"]]) for row in ranked]


def _failing_entry(failed: QuerySet, row: dict, endpoint: Endpoint) -> dict:
    last = failed.filter(delivery__endpoint_id=endpoint.id).order_by("-started_at", "-id").first()
    return {
        "endpoint_id": str(endpoint.id),
        "tenant_id": str(endpoint.tenant_id),
        "url": endpoint.url,
        "failed_attempts": row["failures"],
        "last_failed_at": row["last_failed_at"],
        "last_error_kind": last.error_kind,
        "last_status_code": last.status_code,
        "last_error": last.error_message,
    }

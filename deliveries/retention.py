"""Retention: delete events, deliveries and attempts older than their RETENTION_*_DAYS, in batches.

`manage.py retention`, the hourly beat job and POST /v1/admin/retention/run all call `run_retention`.
Rules: a delivery still pending, in flight or retrying is never deleted, nor are its attempts. A dead
delivery and its attempts are kept for RETENTION_DLQ_DAYS after it died. An event goes only once it
has no delivery left.
"""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from events.models import Event
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# Rows one delete statement removes. Each batch is its own short transaction.
DEFAULT_BATCH_SIZE = 1000

TABLES = ("events", "deliveries", "delivery_attempts")
# Statuses of deliveries kept for RETENTION_DELIVERY_DAYS. Dead ones follow RETENTION_DLQ_DAYS and open ones stay.
FINISHED_STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.CANCELLED)


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these instants are expired, one instant per retention setting."""

    events: dt.datetime
    deliveries: dt.datetime
    attempts: dt.datetime
    dlq: dt.datetime

    @classmethod
    def at(cls, now: dt.datetime) -> "Cutoffs":
        return cls(
            events=now - dt.timedelta(days=settings.RETENTION_EVENT_DAYS),
            deliveries=now - dt.timedelta(days=settings.RETENTION_DELIVERY_DAYS),
            attempts=now - dt.timedelta(days=settings.RETENTION_ATTEMPT_DAYS),
            dlq=now - dt.timedelta(days=settings.RETENTION_DLQ_DAYS),
        )


@dataclass
class RetentionReport:
    """Rows deleted per table, or for a dry run the rows that would be deleted."""

    cutoffs: Cutoffs
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))

    def as_dict(self) -> dict:
        cutoffs = {name: getattr(self.cutoffs, name) for name in ("events", "deliveries", "attempts", "dlq")}
        return {"dry_run": self.dry_run, "counts": dict(self.counts), "cutoffs": cutoffs}


def expired_deliveries(cutoffs: Cutoffs) -> QuerySet:
    """Return finished deliveries past RETENTION_DELIVERY_DAYS and dead ones past RETENTION_DLQ_DAYS."""
    finished = Q(
        status__in=FINISHED_STATUSES,
        created_at__lt=cutoffs.deliveries, updated_at__lt=cutoffs.deliveries,
    )
    dead = Q(status=DeliveryStatus.DEAD, dead_at__lt=cutoffs.dlq)
    return Delivery.objects.filter(finished | dead)


def expired_attempts(cutoffs: Cutoffs) -> QuerySet:
    """Return attempts past RETENTION_ATTEMPT_DAYS of deliveries that succeeded or were cancelled.

    Attempts of open deliveries stay, and so do those of dead ones: they explain a DLQ entry and go
    with it after RETENTION_DLQ_DAYS.
    """
    return DeliveryAttempt.objects.filter(
        started_at__lt=cutoffs.attempts, delivery__status__in=FINISHED_STATUSES,
    )


def expired_events(cutoffs: Cutoffs, deliveries_kept: QuerySet) -> QuerySet:
    """Return fanned-out events past RETENTION_EVENT_DAYS with no delivery in `deliveries_kept`."""
    remaining = deliveries_kept.filter(event_id=OuterRef("pk"))
    return Event.objects.filter(created_at__lt=cutoffs.events, fanned_out_at__isnull=False).exclude(
        Exists(remaining)
    )


def run_retention(dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
                  progress: Callable[[RetentionReport], None] | None = None) -> RetentionReport:
    """Delete every expired row in batches, or with `dry_run` count them and delete nothing."""
    report = RetentionReport(cutoffs=Cutoffs.at(timezone.now()), dry_run=dry_run)
    if dry_run:
        _count_expired(report)
    else:
        _delete_expired(report, batch_size, progress)
    logger.info("retention %s: %s", "dry run" if dry_run else "run", report.counts)
    return report


def _count_expired(report: RetentionReport) -> None:
    """Count what a real run would delete, including attempts that go with their deliveries."""
    cutoffs = report.cutoffs
    doomed = expired_deliveries(cutoffs)
    report.counts["deliveries"] = doomed.count()
    attempts = DeliveryAttempt.objects.filter(
        Q(id__in=expired_attempts(cutoffs).values("id")) | Q(delivery__in=doomed.values("id"))
    )
    report.counts["delivery_attempts"] = attempts.count()
    survivors = Delivery.objects.exclude(id__in=doomed.values("id"))
    report.counts["events"] = expired_events(cutoffs, survivors).count()


def _delete_expired(report: RetentionReport, batch_size: int, progress) -> None:
    cutoffs = report.cutoffs
    _delete_in_batches(expired_attempts(cutoffs), report, batch_size, progress)
    # Per tenant, so each batch reads the (tenant, status, created_at) and DLQ indexes.
    for tenant_id in Tenant.objects.values_list("id", flat=True).iterator():
        _delete_in_batches(expired_deliveries(cutoffs).filter(tenant_id=tenant_id), report, batch_size, progress)
    _delete_in_batches(expired_events(cutoffs, Delivery.objects.all()), report, batch_size, progress)


def _delete_in_batches(expired: QuerySet, report: RetentionReport, batch_size: int, progress) -> None:
    """Delete rows of `expired` one locked batch at a time until none is left."""
    while True:
        with transaction.atomic():
            # The lock keeps a row from being replayed or claimed between this read and the delete.
            ids = list(expired.select_for_update(skip_locked=True).values_list("id", flat=True)[:batch_size])
            if not ids:
                return
            _, per_model = expired.model.objects.filter(id__in=ids).delete()
        _add_counts(report, per_model)
        if progress is not None:
            progress(report)


def _add_counts(report: RetentionReport, per_model: dict[str, int]) -> None:
    tables = {"events.Event": "events", "deliveries.Delivery": "deliveries",
              "deliveries.DeliveryAttempt": "delivery_attempts"}
    for label, count in per_model.items():
        if label in tables:
            report.counts[tables[label]] += count

"""manage.py replay_dlq: replay dead deliveries chosen by tenant, endpoint, time of death or ids."""

import time
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from deliveries import dlq
from deliveries.models import DEAD_REASONS
from dispatcher.fields import parse_instant
from tenants.models import Tenant

# Seconds between progress lines of a long run.
PROGRESS_INTERVAL_SECONDS = 5


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a UUID") from None


def _instant(value: str):
    parsed = parse_instant(value)
    if parsed is None:
        raise CommandError(f"{value!r} is not an ISO 8601 time or date, such as 2026-01-31T12:00:00Z; "
                           "a value without a zone is taken as UTC")
    return parsed


class Command(BaseCommand):
    help = "Put dead deliveries back to pending with a fresh retry budget and enqueue their dispatch."

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--tenant", help="Tenant id (UUID) whose dead deliveries to replay.")
        scope.add_argument("--all-tenants", action="store_true",
                           help="Replay across every tenant. Required when --tenant is not given.")
        parser.add_argument("--endpoint", help="Only deliveries to this endpoint id (UUID).")
        parser.add_argument("--since", help="Only deliveries that died at or after this ISO 8601 time.")
        parser.add_argument("--until", help="Only deliveries that died before this ISO 8601 time.")
        parser.add_argument("--reason", choices=DEAD_REASONS, help="Only deliveries with this dead reason.")
        parser.add_argument("--ids", help="Comma-separated delivery ids (UUIDs) to replay.")
        parser.add_argument("--limit", type=int, help="Maximum number of dead deliveries to select (count).")
        parser.add_argument("--dry-run", action="store_true", help="Count matching deliveries and change nothing.")

    def handle(self, *args, **options):
        selection = self._selection(options)
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError(f"--limit={limit} is invalid: use a whole number of at least 1")
        self._last_progress = time.monotonic()
        try:
            result = dlq.replay_matching(selection, limit=limit, dry_run=options["dry_run"], progress=self._progress)
        except DatabaseError as error:
            raise CommandError(f"replay failed: {error}") from error
        skipped = ", ".join(f"{reason} {count}" for reason, count in result.skipped.items())
        prefix = "dry run: " if result.dry_run else ""
        self.stdout.write(f"{prefix}matched {result.matched}, replayed {result.replayed}, skipped: {skipped}")

    def _selection(self, options) -> dlq.DlqFilter:
        if not options["tenant"] and not options["all_tenants"]:
            raise CommandError("name a tenant with --tenant TENANT_ID, or pass --all-tenants to replay every tenant")
        tenant_id = None
        if options["tenant"]:
            tenant_id = _uuid(options["tenant"])
            if not Tenant.objects.filter(id=tenant_id).exists():
                raise CommandError(f"tenant {tenant_id} not found")
        ids = None
        if options["ids"] is not None:
            ids = [_uuid(part.strip()) for part in options["ids"].split(",") if part.strip()]
            if not ids:
                # An empty --ids "$IDS" must not widen the selection to every dead delivery.
                raise CommandError("--ids is empty: give comma-separated delivery ids, or leave the option out")
        return dlq.DlqFilter(
            tenant_id=tenant_id,
            endpoint_id=_uuid(options["endpoint"]) if options["endpoint"] else None,
            since=_instant(options["since"]) if options["since"] else None,
            until=_instant(options["until"]) if options["until"] else None,
            reason=options["reason"] or None,
            ids=ids,
        )

    def _progress(self, result: dlq.ReplayResult) -> None:
        if time.monotonic() - self._last_progress >= PROGRESS_INTERVAL_SECONDS:
            self._last_progress = time.monotonic()
            self.stdout.write(f"... matched {result.matched}, replayed {result.replayed} so far")

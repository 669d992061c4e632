"""manage.py retention: delete events, deliveries and attempts past their retention days."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from deliveries import retention

# Seconds between progress lines of a long run.
PROGRESS_INTERVAL_SECONDS = 5


class Command(BaseCommand):
    help = "Delete rows older than RETENTION_*_DAYS in batches, keeping every delivery still open."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count the rows that would go and delete nothing.")
        parser.add_argument("--batch-size", type=int, default=retention.DEFAULT_BATCH_SIZE,
                            help=f"Rows deleted per statement (count, default {retention.DEFAULT_BATCH_SIZE}).")

    def handle(self, *args, **options):
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError(f"--batch-size={batch_size} is invalid: use a whole number of at least 1")
        self._last_progress = time.monotonic()
        try:
            report = retention.run_retention(dry_run=options["dry_run"], batch_size=batch_size,
                                             progress=self._progress)
        except DatabaseError as error:
            raise CommandError(f"retention failed: {error}") from error
        counts = ", ".join(f"{table} {count}" for table, count in report.counts.items())
        verb = "would delete" if report.dry_run else "deleted"
        self.stdout.write(f"retention {verb}: {counts}")

    def _progress(self, report: retention.RetentionReport) -> None:
        if time.monotonic() - self._last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress = time.monotonic()
        counts = ", ".join(f"{table} {count}" for table, count in report.counts.items())
        self.stdout.write(f"... deleted so far: {counts}")

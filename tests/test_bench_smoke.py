"""The benchmark's smoke mode end to end, so the benchmark cannot rot unnoticed.

It checks that every accepted event's deliveries reach the receiver exactly once, not a speed.
The run gets its own PostgreSQL database and Redis database, derived from the suite's
DATABASE_URL and CELERY_BROKER_URL settings (the environment or the test defaults), because it
drops and empties both.
"""

import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_SECONDS = 150
SMOKE_REDIS_DB = 14  # 13 when the suite itself uses 14


def smoke_database_url() -> str:
    url = urllib.parse.urlsplit(settings.DATABASE_URL)
    name = url.path.lstrip("/") or "dispatcher"
    return url._replace(path=f"/{name}_bench_smoke").geturl()


def smoke_broker_url() -> str:
    url = urllib.parse.urlsplit(settings.CELERY_BROKER_URL)
    suite_db = url.path.lstrip("/") or "0"
    smoke_db = SMOKE_REDIS_DB if suite_db != str(SMOKE_REDIS_DB) else SMOKE_REDIS_DB - 1
    return url._replace(path=f"/{smoke_db}").geturl()


@pytest.mark.slow
def test_bench_smoke_ledger_balances():
    database_url = smoke_database_url()
    if not database_url.startswith(("postgres://", "postgresql://")):
        pytest.skip("the benchmark needs PostgreSQL; set DATABASE_URL to a postgres:// URL")

    command = [sys.executable, "bench/run.py", "--smoke", "--database-url", database_url,
               "--broker-url", smoke_broker_url()]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS)

    assert result.returncode == 0, f"smoke run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "BALANCED" in result.stdout
    assert "missing 0, duplicates 0, unexpected 0" in result.stdout

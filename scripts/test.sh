#!/usr/bin/env bash
# Run the test suite against PostgreSQL and Redis (local defaults unless DATABASE_URL and
# CELERY_BROKER_URL are set). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-venv.sh requirements-dev.txt

export DATABASE_URL="${DATABASE_URL:-postgres://root@127.0.0.1:5432/dispatcher}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}"
python -m pytest "$@"

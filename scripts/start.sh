#!/usr/bin/env bash
# Start the API, a Celery worker and beat together, installing what is missing first.
# With no DATABASE_URL and CELERY_BROKER_URL set, everything runs on a SQLite file and a
# filesystem broker under var/. Stop all three with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-venv.sh requirements.txt

PORT="${PORT:-8000}"
python manage.py migrate --noinput >/dev/null
python manage.py collectstatic --noinput >/dev/null

pids=()
stop() {
    trap - INT TERM EXIT
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

gunicorn dispatcher.wsgi --bind "127.0.0.1:${PORT}" --workers "${WEB_CONCURRENCY:-4}" --access-logfile - &
pids+=($!)
celery -A dispatcher worker --concurrency "${WORKER_CONCURRENCY:-2}" --loglevel info &
pids+=($!)
celery -A dispatcher beat --loglevel info &
pids+=($!)
echo "Praeto Dispatcher is running on http://127.0.0.1:${PORT}/ (health: /health). Ctrl-C stops it."
wait -n "${pids[@]}"

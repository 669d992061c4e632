"""The services under test and their configuration: database, broker, API, workers, receiver."""

import base64
import os
import secrets
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg
import redis

from bench.processes import Service, free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Limits far above what one run can reach: the run measures throughput, not the limits.
UNREACHABLE_LIMIT = str(10**9)


def service_env(database_url: str, broker_url: str) -> dict[str, str]:
    """Return the environment of every service process of one run."""
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "dispatcher.settings",
        "ENVIRONMENT": "development",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ADMIN_API_KEY": "adm_" + secrets.token_urlsafe(32),
        "DISPATCHER_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "SSRF_ALLOWED_CIDRS": "127.0.0.1/32",
        "RATE_LIMIT_EVENTS_PER_MINUTE": UNREACHABLE_LIMIT,
        "USAGE_MONTHLY_EVENT_LIMIT": UNREACHABLE_LIMIT,
        "USAGE_MONTHLY_ATTEMPT_LIMIT": UNREACHABLE_LIMIT,
        "PYTHONUNBUFFERED": "1",
    })
    return env


def database_name(database_url: str) -> str:
    name = urllib.parse.urlsplit(database_url).path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"database {name!r} is not a benchmark database: its name must contain 'bench', "
                         "because the run drops and recreates it")
    return name


def recreate_database(database_url: str) -> None:
    """Drop and create the run's database on the same server, then migrate it."""
    name = database_name(database_url)
    server_url = urllib.parse.urlsplit(database_url)._replace(path="/postgres").geturl()
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def migrate(env: dict[str, str], log_path: Path) -> None:
    with open(log_path, "w") as log:
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=True, timeout=300)


def flush_broker(broker_url: str) -> None:
    """Empty the run's own Redis database; other databases of the server are left alone."""
    redis.Redis.from_url(broker_url).flushdb()


def broker_queue_length(broker_url: str) -> int:
    return redis.Redis.from_url(broker_url).llen("celery")


def gunicorn_command(app: str, port: int, workers: int) -> list[str]:
    """Return the gunicorn command line shared by the API and the baseline insert app."""
    return [PYTHON, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--backlog", "2048", "--log-level", "warning"]


class Stack:
    """Start and stop the run's services; every one started here is stopped by `stop_all`."""

    def __init__(self, env: dict[str, str], log_dir: Path, web_workers: int, worker_concurrency: int):
        self.env = env
        self.log_dir = log_dir
        self.web_workers = web_workers
        self.worker_concurrency = worker_concurrency
        self.services: dict[str, Service] = {}

    def start(self, name: str, command: list[str], extra_env: dict[str, str] | None = None) -> Service:
        env = dict(self.env, **(extra_env or {}))
        service = Service(name, command, env, ROOT, self.log_dir)
        self.services[name] = service
        return service

    def start_receiver(self) -> int:
        port = free_port()
        service = self.start("receiver", [PYTHON, "bench/receiver.py", "--port", str(port)])
        service.wait_for_http(f"http://127.0.0.1:{port}/_bench/count")
        return port

    def start_web(self, name: str, app: str, extra_env: dict[str, str] | None = None) -> int:
        port = free_port()
        service = self.start(name, gunicorn_command(app, port, self.web_workers), extra_env)
        service.wait_for_http(f"http://127.0.0.1:{port}/health")
        return port

    def start_workers(self) -> Service:
        """Start beat and the Celery worker; returns the worker, whose process group contains the pool."""
        self.start("beat", [PYTHON, "-m", "celery", "-A", "dispatcher", "beat", "-l", "warning",
                            "--pidfile", str(self.log_dir / "beat.pid")])
        worker = self.start("worker", [
            PYTHON, "-m", "celery", "-A", "dispatcher", "worker", "-P", "prefork",
            "-c", str(self.worker_concurrency), "--without-gossip", "--without-mingle", "-l", "info",
        ])
        worker.wait_for_log(" ready.")
        return worker

    def stop(self, name: str) -> None:
        service = self.services.pop(name, None)
        if service is not None:
            service.stop()

    def stop_all(self) -> None:
        for name in reversed(list(self.services)):
            self.stop(name)

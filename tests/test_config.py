"""Start-up rejects malformed settings with a message that names the variable."""

import os
import subprocess
import sys

import pytest

from tests.harness import ROOT


def start_with(**env) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, DJANGO_SETTINGS_MODULE="dispatcher.settings", ENVIRONMENT="test")
    full_env.update(env)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USAGE_MAX_ENDPOINTS", "lots"),
        ("USAGE_MAX_PAYLOAD_BYTES", "-5"),
        ("RATE_LIMIT_EVENTS_PER_MINUTE", "1.5"),
        ("DELIVERY_MAX_RETRIES", "many"),
        ("DELIVERY_RETRY_SCHEDULE", "5,soon"),
        ("DELIVERY_TIMEOUT_SECONDS", "0"),
        ("SSRF_ALLOWED_CIDRS", "10.0.0.0/33"),
        ("ENVIRONMENT", "staging"),
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://x/y"),
        ("CELERY_BROKER_URL", "amqp://guest@localhost//"),
        ("DISPATCHER_ENCRYPTION_KEYS", "not-a-key"),
        ("IDEMPOTENCY_KEY_TTL_HOURS", "0"),
    ],
)
def test_malformed_variable_stops_startup(name, value):
    result = start_with(**{name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[-1]


def test_production_requires_secrets():
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "ADMIN_API_KEY")}
    env.update(DJANGO_SETTINGS_MODULE="dispatcher.settings", ENVIRONMENT="production")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY is missing" in result.stderr


def test_valid_settings_start():
    result = start_with(USAGE_MAX_ENDPOINTS="5", SSRF_ALLOWED_CIDRS="127.0.0.1/32,::1/128")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("name", "value"), [("SSRF_ALLOWED_CIDRS", "0.0.0.0/0"), ("DEBUG", "true")])
def test_production_rejects_unsafe_settings(name, value):
    result = start_with(ENVIRONMENT="production", SECRET_KEY="k" * 50, ADMIN_API_KEY="a" * 32,
                        DISPATCHER_ENCRYPTION_KEYS="x" * 43 + "=", **{name: value})
    assert result.returncode != 0
    assert name in result.stderr

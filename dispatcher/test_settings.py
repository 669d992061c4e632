"""Settings for the test suite: the main settings with test defaults for variables left unset."""

import os

os.environ.setdefault("ENVIRONMENT", "test")
# Real receivers in tests listen on 127.0.0.1; the rest of 127.0.0.0/8 stays blocked for canaries.
os.environ.setdefault("SSRF_ALLOWED_CIDRS", "127.0.0.1/32")
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/dispatcher")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")

from dispatcher.settings import *  # noqa: E402,F401,F403

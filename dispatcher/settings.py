"""Django settings for Praeto Dispatcher, read from the environment (see README for every variable)."""

from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from dispatcher import config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

ENVIRONMENT = config.read_choice("ENVIRONMENT", config.ENVIRONMENTS, "development")
IS_PRODUCTION = ENVIRONMENT == "production"

_local = {} if IS_PRODUCTION else config.load_local_secrets(
    VAR_DIR / "dev-secrets.json", announce=ENVIRONMENT == "development"
)


def _required(name: str) -> str:
    value = config.read_str(name) or _local.get(name, "")
    if not value:
        raise ImproperlyConfigured(f"{name} is missing: it is required when ENVIRONMENT=production")
    return value


SECRET_KEY = _required("SECRET_KEY")
ADMIN_API_KEY = _required("ADMIN_API_KEY")
if IS_PRODUCTION and len(ADMIN_API_KEY) < 24:
    raise ImproperlyConfigured("ADMIN_API_KEY is too short: use at least 24 random characters")
DISPATCHER_ENCRYPTION_KEYS = config.read_fernet_keys("DISPATCHER_ENCRYPTION_KEYS") or config.read_fernet_keys_value(
    _local.get("DISPATCHER_ENCRYPTION_KEYS", "")
)
if not DISPATCHER_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("DISPATCHER_ENCRYPTION_KEYS is missing: it is required when ENVIRONMENT=production")

DEBUG = config.read_bool("DEBUG", ENVIRONMENT == "development")
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG=true is not allowed when ENVIRONMENT=production: debug pages expose settings")
ALLOWED_HOSTS = config.read_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
SECURE_SSL_REDIRECT = config.read_bool("SECURE_SSL_REDIRECT", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# In production the admin is reached over HTTPS through the proxy, so its cookies never travel in clear.
SESSION_COOKIE_SECURE = IS_PRODUCTION
CSRF_COOKIE_SECURE = IS_PRODUCTION

# Retention, in days per kind of row.
SECRET_ROTATION_OVERLAP_DAYS = config.read_int("SECRET_ROTATION_OVERLAP_DAYS", 7, maximum=365)
RETENTION_EVENT_DAYS = config.read_int("RETENTION_EVENT_DAYS", 30, minimum=1)
RETENTION_DELIVERY_DAYS = config.read_int("RETENTION_DELIVERY_DAYS", 30, minimum=1)
RETENTION_ATTEMPT_DAYS = config.read_int("RETENTION_ATTEMPT_DAYS", 30, minimum=1)
RETENTION_DLQ_DAYS = config.read_int("RETENTION_DLQ_DAYS", 30, minimum=1)

# Usage limits; tenants may override each one.
USAGE_MONTHLY_EVENT_LIMIT = config.read_int("USAGE_MONTHLY_EVENT_LIMIT", 10000)
USAGE_MONTHLY_ATTEMPT_LIMIT = config.read_int("USAGE_MONTHLY_ATTEMPT_LIMIT", 50000)
USAGE_MAX_ENDPOINTS = config.read_int("USAGE_MAX_ENDPOINTS", 1000)
USAGE_MAX_PAYLOAD_BYTES = config.read_int("USAGE_MAX_PAYLOAD_BYTES", 262144, minimum=1)
USAGE_MAX_FANOUT_ENDPOINTS = config.read_int("USAGE_MAX_FANOUT_ENDPOINTS", 100)
# Seconds a delivery over its tenant's monthly attempt limit waits before the limit is checked again.
USAGE_DEFERRED_ATTEMPT_SECONDS = config.read_int("USAGE_DEFERRED_ATTEMPT_SECONDS", 60, minimum=1, maximum=3600)

# Rate limits, in requests per fixed window; tenants may override each one.
RATE_LIMIT_EVENTS_PER_MINUTE = config.read_int("RATE_LIMIT_EVENTS_PER_MINUTE", 60, minimum=1)
RATE_LIMIT_ENDPOINT_CREATES_PER_HOUR = config.read_int("RATE_LIMIT_ENDPOINT_CREATES_PER_HOUR", 30, minimum=1)
RATE_LIMIT_ADMIN_REQUESTS_PER_MINUTE = config.read_int("RATE_LIMIT_ADMIN_REQUESTS_PER_MINUTE", 120, minimum=1)

# Delivery: retries after the first attempt, and the seconds before each retry (the last repeats).
DELIVERY_MAX_RETRIES = config.read_int("DELIVERY_MAX_RETRIES", 5, maximum=100)
DELIVERY_RETRY_SCHEDULE = config.read_int_list("DELIVERY_RETRY_SCHEDULE", "5,300,1800,7200,18000")
DELIVERY_TIMEOUT_SECONDS = config.read_float("DELIVERY_TIMEOUT_SECONDS", 15.0, maximum=300)
DELIVERY_CONNECT_TIMEOUT_SECONDS = config.read_float("DELIVERY_CONNECT_TIMEOUT_SECONDS", 5.0, maximum=300)
if DELIVERY_CONNECT_TIMEOUT_SECONDS > DELIVERY_TIMEOUT_SECONDS:
    raise ImproperlyConfigured(
        f"DELIVERY_CONNECT_TIMEOUT_SECONDS={DELIVERY_CONNECT_TIMEOUT_SECONDS} is invalid: it must not exceed "
        f"DELIVERY_TIMEOUT_SECONDS={DELIVERY_TIMEOUT_SECONDS}"
    )
SSRF_ALLOWED_CIDRS = config.read_cidrs("SSRF_ALLOWED_CIDRS")
if IS_PRODUCTION and SSRF_ALLOWED_CIDRS:
    raise ImproperlyConfigured(
        "SSRF_ALLOWED_CIDRS is set while ENVIRONMENT=production: it lets deliveries reach private networks and is "
        "for development and tests only; unset it"
    )
IDEMPOTENCY_KEY_TTL_HOURS = config.read_int("IDEMPOTENCY_KEY_TTL_HOURS", 24, minimum=1, maximum=24 * 30)

# Deliveries one worker task claims and sends concurrently.
DELIVERY_BATCH_SIZE = config.read_int("DELIVERY_BATCH_SIZE", 50, minimum=1, maximum=1000)
# Seconds a worker's claim outlives the attempt deadline before the sweep hands the row to another worker.
DELIVERY_LEASE_MARGIN_SECONDS = config.read_float("DELIVERY_LEASE_MARGIN_SECONDS", 60.0, minimum=0.5, maximum=3600)
# Seconds between sweeps that re-enqueue due deliveries and expired leases.
DELIVERY_SWEEP_SECONDS = config.read_float("DELIVERY_SWEEP_SECONDS", 2.0, maximum=60)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_celery_beat",
    "tenants",
    "endpoints",
    "events",
    "deliveries",
    "limits",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "dispatcher.middleware.RejectNulQueryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dispatcher.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "dispatcher" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "dispatcher.wsgi.application"

DATABASE_URL = config.read_url(
    "DATABASE_URL", f"sqlite:///{VAR_DIR / 'dispatcher.sqlite3'}", ("sqlite", "postgres", "postgresql")
)
DATABASES = {"default": config.env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # SQLite serializes writers; wait for the lock rather than fail under a worker's writes.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = config.read_int("DATABASE_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# Bodies up to the largest event payload are read by our own size check (413), not Django's 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = USAGE_MAX_PAYLOAD_BYTES + 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "dispatcher.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PAGINATION_CLASS": "dispatcher.pagination.CreatedCursorPagination",
    "PAGE_SIZE": 50,
}

# Celery: late acks and a prefetch of one, so a killed worker's message goes back to the queue.
CELERY_BROKER_URL = config.read_url(
    "CELERY_BROKER_URL", "filesystem://", ("redis", "rediss", "filesystem", "memory")
)
BROKER_IS_FILESYSTEM = CELERY_BROKER_URL.startswith("filesystem://")
if BROKER_IS_FILESYSTEM:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # Seconds between looks at the folder; kombu's default of 1 s made a burst of events drain slowly.
        "polling_interval": 0.1,
    }
else:
    # No task uses a countdown near this, so unacked messages are restored only after a real loss.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        # Seconds to wait on a Redis that accepts connections but does not respond, so an enqueue
        # after commit fails and leaves the work to the sweep instead of hanging the API request.
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup closes the database connection around every task unless this is set, so
# each task paid for a new connection. Set high, it leaves connections to the task signals in
# dispatcher/celery.py, which apply CONN_MAX_AGE and CONN_HEALTH_CHECKS as Django does per request.
CELERY_DB_REUSE_MAX = 10**9
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic jobs; DatabaseScheduler copies these into the database, where the admin can edit them.
CELERY_BEAT_SCHEDULE = {
    "delivery-sweep": {"task": "deliveries.sweep", "schedule": DELIVERY_SWEEP_SECONDS},
    # Hourly at minute 0: delete events, deliveries and attempts past their RETENTION_*_DAYS.
    "retention": {"task": "deliveries.run_retention", "schedule": crontab(minute=0)},
    # Hourly at minute 30: delete expired idempotency keys and stale rate_limit_counters rows.
    "limits-purge": {"task": "limits.purge_expired", "schedule": crontab(minute=30)},
}
# Enqueue fails fast when the broker is down; the sweep enqueues the work once it is back.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    # The sweep runs every few seconds; a line per task received and done would drown real news.
    "loggers": {
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
    "root": {"handlers": ["console"], "level": config.read_choice(
        "LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"), "INFO"
    ).upper()},
}

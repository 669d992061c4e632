"""Rate limits (fixed windows in `rate_limit_counters`) and the per-request usage checks.

The usage checks are body size, endpoint count and fan-out; monthly counts live in
`limits.usage`. Every count is one atomic statement, so exactly the limit passes however
many requests race.
Times come from `django.utils.timezone.now()`, so tests can move the clock.
"""

import datetime as dt
import logging
import math
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from dispatcher.problems import Problem
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# The operator key is not a tenant; its counters use this fixed tenant_id.
ADMIN_COUNTER_TENANT = "admin"

# Rate limit scopes: (scope name, window in seconds, Tenant override field, setting).
EVENTS_SCOPE = ("events", 60, "events_per_minute", "RATE_LIMIT_EVENTS_PER_MINUTE")
ENDPOINT_CREATES_SCOPE = ("endpoint_creates", 3600, "endpoint_creates_per_hour",
                          "RATE_LIMIT_ENDPOINT_CREATES_PER_HOUR")
ADMIN_SCOPE = ("admin", 60, None, "RATE_LIMIT_ADMIN_REQUESTS_PER_MINUTE")

# Usage limits: Tenant override field -> setting.
USAGE_SETTINGS = {
    "monthly_event_limit": "USAGE_MONTHLY_EVENT_LIMIT",
    "monthly_attempt_limit": "USAGE_MONTHLY_ATTEMPT_LIMIT",
    "max_endpoints": "USAGE_MAX_ENDPOINTS",
    "max_payload_bytes": "USAGE_MAX_PAYLOAD_BYTES",
    "max_fanout_endpoints": "USAGE_MAX_FANOUT_ENDPOINTS",
}
RATE_SETTINGS = {"events_per_minute": EVENTS_SCOPE[3], "endpoint_creates_per_hour": ENDPOINT_CREATES_SCOPE[3]}

_HIT_SQL = """
INSERT INTO rate_limit_counters (counter_key, tenant_id, scope, window_start, window_seconds, count)
VALUES (%s, %s, %s, %s, %s, 1)
ON CONFLICT (counter_key) DO UPDATE
SET count = rate_limit_counters.count + 1, updated_at = CURRENT_TIMESTAMP
RETURNING count
"""


@dataclass
class WindowCount:
    limit: int
    count: int
    resets_at: dt.datetime

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


def limit_for(tenant: Tenant | None, field: str) -> int:
    """Return the tenant's override of a limit, or the setting when the override is null."""
    override = getattr(tenant, field, None) if tenant is not None and field else None
    setting = USAGE_SETTINGS.get(field) or RATE_SETTINGS.get(field)
    return override if override is not None else getattr(settings, setting)


def effective_limits(tenant: Tenant) -> dict[str, int]:
    """Return every usage and rate limit in force for a tenant, overrides applied."""
    return {field: limit_for(tenant, field) for field in (*RATE_SETTINGS, *USAGE_SETTINGS)}


# --- fixed-window rate limits ----------------------------------------------------------------


def hit_window(tenant_id: str, scope: str, limit: int, window_seconds: int) -> WindowCount:
    """Count one request in the current window of `scope` and return the count after it."""
    now = timezone.now()
    start_seconds = math.floor(now.timestamp() / window_seconds) * window_seconds
    window_start = dt.datetime.fromtimestamp(start_seconds, dt.timezone.utc)
    counter_key = f"{scope}:{tenant_id}:{start_seconds}"
    with connection.cursor() as cursor:
        cursor.execute(_HIT_SQL, [counter_key, tenant_id, scope, window_start, window_seconds])
        count = cursor.fetchone()[0]
    return WindowCount(limit, count, window_start + dt.timedelta(seconds=window_seconds))


def _check_rate(tenant: Tenant | None, scope_spec: tuple, unit: str) -> WindowCount:
    scope, window_seconds, field, setting = scope_spec
    limit = limit_for(tenant, field) if field else getattr(settings, setting)
    tenant_id = str(tenant.id) if tenant is not None else ADMIN_COUNTER_TENANT
    result = hit_window(tenant_id, scope, limit, window_seconds)
    if not result.allowed:
        logger.info("rate limit %s reached for %s: %d of %d", scope, tenant_id, result.count, limit)
        raise rate_limited(result, f"rate limit of {limit} {unit} reached; retry after the window resets",
                           "rate_limited")
    return result


def check_event_rate(tenant: Tenant) -> WindowCount:
    return _check_rate(tenant, EVENTS_SCOPE, "events per minute")


def check_endpoint_create_rate(tenant: Tenant) -> WindowCount:
    return _check_rate(tenant, ENDPOINT_CREATES_SCOPE, "endpoint creations per hour")


def check_admin_rate() -> WindowCount:
    return _check_rate(None, ADMIN_SCOPE, "admin requests per minute")


def seconds_until(moment: dt.datetime) -> int:
    """Return whole seconds from now until `moment`, rounded up and at least 1."""
    return max(1, math.ceil((moment - timezone.now()).total_seconds()))


def rate_limited(result: WindowCount, detail: str, code: str) -> Problem:
    """Build a 429 with Retry-After and the RateLimit-* headers of the window."""
    wait = seconds_until(result.resets_at)
    headers = {
        "Retry-After": str(wait),
        "RateLimit-Limit": str(result.limit),
        "RateLimit-Remaining": str(result.remaining),
        "RateLimit-Reset": str(wait),
    }
    return Problem(429, code, "Too many requests", f"{detail} in {wait} s", headers=headers)


# --- body size, endpoint count and fan-out --------------------------------------------------


def check_payload_size(tenant: Tenant, size: int) -> None:
    limit = limit_for(tenant, "max_payload_bytes")
    if size > limit:
        raise Problem(413, "payload_too_large", "Payload too large",
                      f"request body is {size} bytes; the limit is {limit} bytes (UTF-8 bytes, not characters)")


def check_endpoint_count(tenant: Tenant, current: int) -> None:
    """Reject one more endpoint when the tenant already has its maximum (422)."""
    limit = limit_for(tenant, "max_endpoints")
    if current >= limit:
        raise Problem(422, "endpoint_limit_reached", "Rejected by a rule",
                      f"this tenant has {current} endpoints, the maximum is {limit}; delete one or ask "
                      "the operator to raise max_endpoints")


def check_fanout(tenant: Tenant, event_type: str, matching: int) -> None:
    """Reject an event that would fan out to more endpoints than the tenant's limit (422)."""
    limit = limit_for(tenant, "max_fanout_endpoints")
    if matching > limit:
        raise Problem(422, "fanout_limit_exceeded", "Rejected by a rule",
                      f"event type {event_type!r} matches {matching} enabled endpoints; at most {limit} may "
                      "receive one event, so narrow the endpoints' event_types or ask to raise max_fanout_endpoints")


def lock_tenant(tenant: Tenant) -> None:
    """Lock the tenant row until the transaction ends, so per-tenant checks and writes serialize."""
    list(Tenant.objects.select_for_update().filter(id=tenant.id).values_list("id", flat=True))


def read_body(request, tenant: Tenant) -> bytes:
    """Return the raw request body, or raise 413 once it passes the tenant's byte limit.

    The stream is read directly, at most limit + 1 bytes, so a tenant limit above
    DATA_UPLOAD_MAX_MEMORY_SIZE works and an oversized body is never read whole.
    """
    django_request = getattr(request, "_request", request)
    if hasattr(django_request, "_body"):
        body = django_request._body
    elif "CONTENT_LENGTH" not in django_request.META and "HTTP_TRANSFER_ENCODING" in django_request.META:
        # The WSGI server gives Django no length for a chunked body, so it would read as empty.
        raise Problem(411, "length_required", "Length required",
                      "send the event with a Content-Length header; chunked request bodies are not accepted")
    else:
        declared = _declared_length(django_request)
        check_payload_size(tenant, declared)
        body = django_request.read(limit_for(tenant, "max_payload_bytes") + 1)
    check_payload_size(tenant, len(body))
    return body


def _declared_length(django_request) -> int:
    try:
        return max(0, int(django_request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0

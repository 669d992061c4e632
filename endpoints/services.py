import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatcher import crypto
from endpoints import secrets as signing
from endpoints.models import Endpoint, EndpointSecret
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def type_matches(event_types: list[str], event_type: str) -> bool:
    """Return whether a filter list admits a type; "order.*" admits "order.paid" and "order.x.y"."""
    if not event_types:
        return True
    for pattern in event_types:
        if pattern == event_type or pattern == "*":
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def matching_endpoints(tenant_id, event_type: str) -> list[Endpoint]:
    live = Endpoint.objects.filter(tenant_id=tenant_id, enabled=True, deleted_at__isnull=True)
    return [endpoint for endpoint in live.only("id", "event_types") if type_matches(endpoint.event_types, event_type)]


def live_endpoints_by_tenant(tenant_ids) -> dict:
    """Return the enabled, undeleted endpoints of each tenant, read with one query for all of them."""
    by_tenant: dict = {tenant_id: [] for tenant_id in tenant_ids}
    live = Endpoint.objects.filter(tenant_id__in=list(tenant_ids), enabled=True, deleted_at__isnull=True)
    for endpoint in live.only("id", "tenant_id", "event_types"):
        by_tenant[endpoint.tenant_id].append(endpoint)
    return by_tenant


@transaction.atomic
def create_endpoint(tenant: Tenant, data: dict, signing_secret: str | None) -> tuple[Endpoint, str]:
    """Create an endpoint and its first secret; returns the plaintext secret for the create response."""
    secret = signing_secret or signing.generate_secret()
    signing.decode_secret(secret)
    endpoint = Endpoint.objects.create(tenant=tenant, **data)
    EndpointSecret.objects.create(endpoint=endpoint, encrypted_secret=crypto.encrypt(secret))
    logger.info("endpoint %s created for tenant %s", endpoint.id, tenant.id)
    return endpoint, secret


def update_endpoint(endpoint: Endpoint, data: dict) -> Endpoint:
    for field, value in data.items():
        setattr(endpoint, field, value)
    if data.get("enabled") is True:
        endpoint.disabled_reason = ""
    endpoint.save()
    return endpoint


@transaction.atomic
def delete_endpoint(endpoint: Endpoint) -> int:
    """Hide the endpoint and cancel its waiting deliveries; history stays. Returns deliveries cancelled."""
    endpoint.deleted_at = timezone.now()
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted"
    endpoint.save(update_fields=["deleted_at", "enabled", "disabled_reason", "updated_at"])
    cancelled = endpoint.deliveries.filter(status__in=["pending", "retrying"]).update(
        status="cancelled", next_attempt_at=None, last_error="endpoint deleted", updated_at=timezone.now()
    )
    logger.info("endpoint %s deleted; %d waiting deliveries cancelled", endpoint.id, cancelled)
    return cancelled


def disable_endpoint(endpoint_id, reason: str) -> None:
    Endpoint.objects.filter(id=endpoint_id, enabled=True).update(
        enabled=False, disabled_reason=reason, updated_at=timezone.now()
    )
    logger.warning("endpoint %s disabled: %s", endpoint_id, reason)


def signing_keys(endpoint_ids, now: dt.datetime | None = None) -> dict:
    """Return the HMAC keys of every unexpired secret of each endpoint, newest first."""
    now = now or timezone.now()
    keys: dict = {endpoint_id: [] for endpoint_id in endpoint_ids}
    rows = EndpointSecret.objects.filter(endpoint_id__in=list(endpoint_ids)).exclude(expires_at__lte=now)
    for row in rows.order_by("-created_at", "-id"):
        keys[row.endpoint_id].append(signing.decode_secret(crypto.decrypt(row.encrypted_secret)))
    return keys


@transaction.atomic
def rotate_secret(endpoint: Endpoint, overlap_days: int | None = None, new_secret: str | None = None) -> str:
    """Add a new secret; older ones keep signing for the overlap (0 revokes them now)."""
    if overlap_days is None:
        overlap_days = settings.SECRET_ROTATION_OVERLAP_DAYS
    secret = new_secret or signing.generate_secret()
    signing.decode_secret(secret)
    now = timezone.now()
    expires = now + dt.timedelta(days=overlap_days)
    live = endpoint.secrets.select_for_update().exclude(expires_at__lte=now)
    for row in live:
        row.expires_at = min(row.expires_at, expires) if row.expires_at else expires
        row.save(update_fields=["expires_at"])
    EndpointSecret.objects.create(endpoint=endpoint, encrypted_secret=crypto.encrypt(secret))
    logger.info("endpoint %s secret rotated, overlap %d days", endpoint.id, overlap_days)
    return secret

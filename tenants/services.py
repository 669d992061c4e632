import secrets

from django.db import transaction
from django.utils import timezone

from dispatcher.auth import API_KEY_PREFIX, hash_api_key
from tenants.models import ApiKey, Tenant

# Visible characters of a key kept for display: the marker plus eight random characters.
VISIBLE_PREFIX_LENGTH = len(API_KEY_PREFIX) + 8


def create_api_key(tenant: Tenant) -> tuple[ApiKey, str]:
    """Create a key with 256 random bits; the plaintext is returned here and stored nowhere."""
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(tenant=tenant, prefix=raw[:VISIBLE_PREFIX_LENGTH], key_hash=hash_api_key(raw))
    return api_key, raw


@transaction.atomic
def create_tenant(name: str, **overrides) -> tuple[Tenant, ApiKey, str]:
    tenant = Tenant.objects.create(name=name, **overrides)
    api_key, raw = create_api_key(tenant)
    return tenant, api_key, raw


def revoke_api_key(api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])

"""Bearer authentication for tenant API keys and the operator's ADMIN_API_KEY."""

import hashlib
import hmac

from django.conf import settings
from rest_framework import authentication, permissions

from dispatcher.problems import Problem
from tenants.models import ApiKey

API_KEY_PREFIX = "pdk_"


def hash_api_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough; no salt or stretching is needed.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _forbidden(detail: str, code: str = "forbidden") -> Problem:
    return Problem(403, code, "Forbidden", detail)


def bearer_token(request) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    return token.strip()


def find_tenant_key(token: str) -> ApiKey | None:
    if not token.startswith(API_KEY_PREFIX) or len(token) > 200:
        return None
    return (
        ApiKey.objects.select_related("tenant")
        .filter(key_hash=hash_api_key(token), revoked_at__isnull=True)
        .first()
    )


class TenantKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate a tenant API key; sets request.tenant. A disabled tenant gets 403."""

    def authenticate(self, request):
        api_key = find_tenant_key(bearer_token(request))
        if api_key is None:
            raise _unauthorized("unknown or revoked API key")
        if api_key.tenant.disabled:
            raise _forbidden("this tenant is disabled; ask the operator to enable it", "tenant_disabled")
        request._request.tenant = api_key.tenant
        return (api_key.tenant, api_key)

    def authenticate_header(self, request):
        return "Bearer"


class AdminKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate ADMIN_API_KEY in constant time; a valid tenant key here gets 403."""

    def authenticate(self, request):
        token = bearer_token(request)
        if hmac.compare_digest(token.encode("utf-8"), settings.ADMIN_API_KEY.encode("utf-8")):
            return ("admin", None)
        if find_tenant_key(token) is not None:
            raise _forbidden("a tenant API key cannot use /v1/admin routes; use ADMIN_API_KEY")
        raise _unauthorized("unknown admin API key")

    def authenticate_header(self, request):
        return "Bearer"


class IsAuthenticated(permissions.BasePermission):
    def has_permission(self, request, view):
        return request.user is not None

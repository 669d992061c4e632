from django.conf import settings
from django.utils import timezone
from rest_framework.response import Response

from dispatcher.views import TenantView
from limits import services, usage


class SafetyLimitsView(TenantView):
    """GET /v1/limits/safety: every limit in force for the calling tenant, overrides applied."""

    def get(self, request):
        limits = services.effective_limits(self.tenant)
        overridden = sorted(name for name in limits if getattr(self.tenant, name) is not None)
        return Response({
            "rate_limits": {name: limits[name] for name in services.RATE_SETTINGS},
            "usage_limits": {name: limits[name] for name in services.USAGE_SETTINGS},
            "overridden": overridden,
            "idempotency_key_ttl_hours": settings.IDEMPOTENCY_KEY_TTL_HOURS,
        })


class UsageView(TenantView):
    """GET /v1/limits/usage: this month's events and attempts, and endpoints, against their limits."""

    def get(self, request):
        body = usage.usage_this_month(self.tenant, timezone.now())
        # Read through the reverse relation because limits does not import the endpoints app.
        used = self.tenant.endpoints.filter(deleted_at__isnull=True).count()
        limit = services.limit_for(self.tenant, "max_endpoints")
        body["endpoints"] = {"used": used, "limit": limit, "remaining": max(0, limit - used)}
        return Response(body)

"""Shared API plumbing: the tenant-scoped base view and the health check."""

import logging

from django.db import connection
from django.http import JsonResponse
from rest_framework.views import APIView

from dispatcher.auth import IsAuthenticated, TenantKeyAuthentication
from dispatcher.celery import app
from dispatcher.fields import parse_uuid
from dispatcher.problems import not_found

logger = logging.getLogger(__name__)


class TenantView(APIView):
    """Base of tenant routes: every query starts from `self.scoped(...)`, so other tenants' rows are invisible."""

    authentication_classes = [TenantKeyAuthentication]
    permission_classes = [IsAuthenticated]

    @property
    def tenant(self):
        return self.request.user

    def scoped(self, model):
        return model.objects.filter(tenant=self.tenant)

    def get_scoped(self, queryset, pk: str, what: str):
        found = queryset.filter(tenant=self.tenant, id=parse_uuid(pk, what)).first()
        if found is None:
            raise not_found(f"{what} {pk} not found")
        return found


def health(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503)


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any driver error means the check failed
        logger.warning("health: database check failed: %s", error)
        return "failed"
    return "ok"


def _check_broker() -> str:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            # Connecting alone proves little: a wedged Redis accepts connections and never responds.
            client = getattr(conn.default_channel, "client", None)
            if client is not None:
                client.ping()
    except Exception as error:  # noqa: BLE001 - any transport error means the check failed
        logger.warning("health: broker check failed: %s", error)
        return "failed"
    return "ok"

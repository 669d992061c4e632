import uuid

from django.db import models

from tenants.models import Tenant


class Endpoint(models.Model):
    """A tenant's webhook destination and the event types it subscribes to."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="endpoints")
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=500, blank=True, default="")
    # Exact types or prefix wildcards such as "order.*"; empty means every type.
    event_types = models.JSONField(default=list, blank=True)
    # Static custom headers sent with each delivery; values are never logged or shown in the admin.
    headers = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "endpoint_destinations"
        ordering = ["-created_at"]
        indexes = [
            # Fan-out reads a tenant's live endpoints.
            models.Index(fields=["tenant", "deleted_at", "enabled"], name="endpoint_tenant_live_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.url} ({self.id})"

    @property
    def is_active(self) -> bool:
        return self.enabled and self.deleted_at is None


class EndpointSecret(models.Model):
    """A signing secret of an endpoint, encrypted at rest; every unexpired one signs."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="secrets")
    encrypted_secret = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "endpoint_secrets"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"secret {self.pk} of endpoint {self.endpoint_id}"

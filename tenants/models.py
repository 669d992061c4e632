import uuid

from django.db import models


class Tenant(models.Model):
    """A customer of the service; every endpoint, event and delivery belongs to one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    disabled = models.BooleanField(default=False)
    # Per-tenant overrides of the limits in settings; null means the setting applies.
    monthly_event_limit = models.PositiveIntegerField(null=True, blank=True)
    monthly_attempt_limit = models.PositiveIntegerField(null=True, blank=True)
    max_endpoints = models.PositiveIntegerField(null=True, blank=True)
    max_payload_bytes = models.PositiveIntegerField(null=True, blank=True)
    max_fanout_endpoints = models.PositiveIntegerField(null=True, blank=True)
    events_per_minute = models.PositiveIntegerField(null=True, blank=True)
    endpoint_creates_per_hour = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "tenant_profile"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class ApiKey(models.Model):
    """A tenant API key, stored as a SHA-256 hash plus the visible prefix."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_keys"
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant_id})"

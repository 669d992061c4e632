import uuid

from django.db import models

from endpoints.models import Endpoint
from events.models import Event
from tenants.models import Tenant


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


# Why a delivery is dead: its retries ran out, the receiver returned 410 Gone, or the SSRF policy blocked it.
DEAD_REASONS = ("retries_exhausted", "gone", "blocked_destination")

# Statuses a worker may still act on; retention never deletes these.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT, DeliveryStatus.RETRYING)
WAITING_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


class Delivery(models.Model):
    """One event sent to one endpoint: its state machine, retry time and worker lease."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    # Attempts since creation or the last replay; the retry schedule and budget count these.
    round_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker that claims the row sets a token and an expiry; the sweep reclaims expired leases.
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    dead_reason = models.CharField(max_length=64, blank=True, default="")
    dead_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "deliveries"
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_event_endpoint_uniq"),
        ]
        indexes = [
            # The claim: waiting deliveries whose time has come, oldest first.
            models.Index(
                fields=["next_attempt_at"], name="delivery_due_idx",
                condition=models.Q(status__in=["pending", "retrying"]),
            ),
            # The sweep: in-flight deliveries whose lease has expired.
            models.Index(
                fields=["lease_expires_at"], name="delivery_lease_idx",
                condition=models.Q(status="in_flight"),
            ),
            # A tenant's recent deliveries, by status.
            models.Index(fields=["tenant", "-created_at"], name="delivery_tenant_recent_idx"),
            models.Index(fields=["tenant", "status", "-created_at"], name="delivery_tenant_status_idx"),
            # The dead-letter queue of a tenant, newest first.
            models.Index(
                fields=["tenant", "-dead_at"], name="delivery_dlq_idx", condition=models.Q(status="dead"),
            ),
            # An endpoint's deliveries (cancel on delete, per-endpoint lists).
            models.Index(fields=["endpoint", "status"], name="delivery_endpoint_status_idx"),
            # Retention, metrics and the Django admin read deliveries of every tenant by age.
            models.Index(fields=["created_at"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id} ({self.status})"


class DeadDeliveryManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(status=DeliveryStatus.DEAD)


class DeadDelivery(Delivery):
    """A dead delivery: the dead-letter queue as its own page of the Django admin."""

    objects = DeadDeliveryManager()

    class Meta:
        proxy = True
        verbose_name = "dead delivery"
        verbose_name_plural = "dead-letter queue"


class AttemptErrorKind(models.TextChoices):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DNS = "dns"
    TLS = "tls"
    BLOCKED_DESTINATION = "blocked_destination"
    HTTP_STATUS = "http_status"


class DeliveryAttempt(models.Model):
    """One HTTP POST of a delivery and what the receiver returned."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, choices=AttemptErrorKind.choices, blank=True, default="")
    error_message = models.CharField(max_length=500, blank=True, default="")
    # The first 4 KiB of the response body.
    response_body = models.TextField(blank=True, default="")
    response_truncated = models.BooleanField(default=False)

    class Meta:
        db_table = "delivery_attempts"
        ordering = ["delivery", "number"]
        indexes = [
            # A delivery's attempt log.
            models.Index(fields=["delivery", "number"], name="attempt_delivery_idx"),
            # Metrics over a tenant's recent attempts, and retention by age.
            models.Index(fields=["tenant", "started_at"], name="attempt_tenant_started_idx"),
            models.Index(fields=["started_at"], name="attempt_started_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"

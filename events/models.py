import uuid

from django.db import models
from django.utils import timezone

from tenants.models import Tenant


class Event(models.Model):
    """An accepted event and the exact envelope bytes every delivery of it sends."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=128)
    # The JSON envelope as UTF-8 text, serialized once at acceptance.
    body = models.TextField()
    body_bytes = models.PositiveIntegerField()
    # Set once the fan-out task has created this event's deliveries.
    fanned_out_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "events"
        ordering = ["-created_at"]
        indexes = [
            # A tenant's recent events, optionally by type.
            models.Index(fields=["tenant", "-created_at"], name="event_tenant_recent_idx"),
            # The sweep looks for accepted events whose fan-out message was lost.
            models.Index(
                fields=["created_at"], name="event_fanout_pending_idx",
                condition=models.Q(fanned_out_at__isnull=True),
            ),
            # Retention deletes by age.
            models.Index(fields=["created_at"], name="event_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} ({self.id})"

from django.db import models

from tenants.models import Tenant


class TransactionNow(models.Func):
    """`now()` on PostgreSQL (the start of the transaction) and CURRENT_TIMESTAMP on SQLite."""

    template = "now()"
    output_field = models.DateTimeField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return "CURRENT_TIMESTAMP", []


class PlainTextField(models.TextField):
    """A text column that gets no second `text_pattern_ops` index on PostgreSQL.

    Django adds that index to every unique or indexed column whose type is spelled "text".
    Counter keys are only compared for equality, and the schema of `rate_limit_counters`
    fixes its index list, so the extra index must not exist.
    """

    def db_type(self, connection):
        return "TEXT"


class RateLimitCounter(models.Model):
    """Requests counted in one fixed window of one scope, for a tenant or for the admin key."""

    # "<scope>:<tenant_id>:<window start in Unix seconds>", so each window is one row.
    counter_key = PlainTextField(primary_key=True)
    # A tenant UUID as text, or "admin" for the operator key, so no foreign key.
    tenant_id = models.TextField()
    scope = models.TextField()
    window_start = models.DateTimeField()
    window_seconds = models.IntegerField()
    count = models.IntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(db_default=TransactionNow())
    updated_at = models.DateTimeField(db_default=TransactionNow())

    class Meta:
        db_table = "rate_limit_counters"
        # The three indexes the schema requires (on tenant_id + scope, window_start and
        # updated_at) are created by SQL in migration 0001: their names are longer than the
        # 30 characters Django allows in Meta.indexes.

    def __str__(self) -> str:
        return f"{self.counter_key} = {self.count}"


class MonthlyUsage(models.Model):
    """Events accepted and delivery attempts made by one tenant in one calendar month (UTC)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # The first day of the month.
    month = models.DateField()
    events = models.IntegerField(default=0, db_default=0)
    attempts = models.IntegerField(default=0, db_default=0)
    updated_at = models.DateTimeField(db_default=TransactionNow())

    class Meta:
        db_table = "usage_counters"
        constraints = [
            # One row per tenant and month; increments upsert against it.
            models.UniqueConstraint(fields=["tenant", "month"], name="usage_counters_tenant_month_uniq"),
        ]

    def __str__(self) -> str:
        return f"usage of {self.tenant_id} in {self.month:%Y-%m}"


class IdempotencyStatus(models.TextChoices):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(models.Model):
    """An `Idempotency-Key` a tenant sent on POST /v1/events, with the first response to replay."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of the raw request body, hex.
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=IdempotencyStatus.choices)
    # A random value of the request holding the claim; its completion and release check it.
    claim_token = models.UUIDField()
    # Until then another request with the key waits (409); after it a crashed claim may be taken over.
    locked_until = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    event_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "idempotency_keys"
        constraints = [
            # The claim is an insert that conflicts on this pair.
            models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_tenant_key_uniq"),
        ]
        indexes = [
            # Retention purges expired keys.
            models.Index(fields=["expires_at"], name="idempotency_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"idempotency key {self.pk} of {self.tenant_id} ({self.status})"

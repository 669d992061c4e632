from django.contrib import admin, messages

from deliveries import dlq
from deliveries.models import DeadDelivery, Delivery, DeliveryAttempt
from dispatcher.admin_tools import LargeTableAdmin, TenantIdFilter, UUIDInputFilter

DELIVERY_FIELDS = (
    "id", "tenant", "event", "endpoint", "status", "attempt_count", "round_attempts", "next_attempt_at",
    "last_status_code", "last_error", "dead_reason", "dead_at", "succeeded_at", "created_at", "updated_at",
)


class EndpointIdFilter(UUIDInputFilter):
    title = "endpoint"
    parameter_name = "endpoint_id"
    field_name = "endpoint_id"


class DeadReasonFilter(admin.SimpleListFilter):
    """Dead reasons as fixed choices, since listing the distinct values would scan the table."""

    title = "dead reason"
    parameter_name = "dead_reason"

    def lookups(self, request, model_admin):
        return [("retries_exhausted", "retries exhausted"), ("gone", "gone (410)"),
                ("blocked_destination", "blocked destination")]

    def queryset(self, request, queryset):
        return queryset.filter(dead_reason=self.value()) if self.value() else queryset


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "duration_ms", "status_code", "error_kind", "error_message", "response_body")
    readonly_fields = fields
    ordering = ("number",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyDeliveryAdmin(LargeTableAdmin):
    """Delivery history is written by workers only, so every page here is read-only."""

    list_select_related = ("tenant", "endpoint", "event")
    raw_id_fields = ("tenant", "event", "endpoint")
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS
    inlines = [AttemptInline]

    def get_queryset(self, request):
        # The list shows only the event type, so it skips the envelope of up to USAGE_MAX_PAYLOAD_BYTES per row.
        return super().get_queryset(request).defer("event__body")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Actions check the permission without an object, while detail pages stay read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="event type")
    def event_type(self, delivery: Delivery) -> str:
        return delivery.event.type

    @admin.display(description="endpoint URL")
    def endpoint_url(self, delivery: Delivery) -> str:
        return delivery.endpoint.url


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyDeliveryAdmin):
    list_display = ("id", "status", "tenant", "endpoint_url", "event_type", "attempt_count", "last_status_code",
                    "next_attempt_at", "created_at")
    list_filter = ("status", TenantIdFilter, EndpointIdFilter, "created_at")


@admin.register(DeadDelivery)
class DeadDeliveryAdmin(ReadOnlyDeliveryAdmin):
    """The dead-letter queue, newest death first, with a replay action."""

    list_display = ("id", "tenant", "endpoint_url", "event_type", "dead_reason", "dead_at", "attempt_count",
                    "last_status_code", "last_error")
    list_filter = (DeadReasonFilter, TenantIdFilter, EndpointIdFilter, "dead_at")
    ordering = ("-dead_at", "-id")
    actions = ["replay_selected"]

    @admin.action(description="Replay selected", permissions=["change"])
    def replay_selected(self, request, queryset):
        result = dlq.replay_matching(dlq.DlqFilter(ids=queryset.order_by().values("id")))
        skipped = sum(result.skipped.values())
        message = f"Replayed {result.replayed} of {result.matched} dead deliveries."
        if skipped:
            message += f" Skipped {skipped} whose endpoint is disabled or deleted: enable the endpoint first."
        self.message_user(request, message, messages.WARNING if skipped else messages.SUCCESS)

import json

from django.contrib import admin
from django.utils.html import format_html

from dispatcher.admin_tools import LargeTableAdmin, TenantIdFilter
from events.models import Event


@admin.register(Event)
class EventAdmin(LargeTableAdmin):
    """Accepted events, read-only: the stored envelope is what every delivery sends."""

    list_display = ("id", "type", "tenant", "body_bytes", "created_at", "fanned_out_at")
    list_select_related = ("tenant",)
    list_filter = (TenantIdFilter, "created_at")
    raw_id_fields = ("tenant",)
    search_fields = ("=type",)
    fields = ("id", "tenant", "type", "created_at", "fanned_out_at", "body_bytes", "envelope")
    readonly_fields = fields

    def get_queryset(self, request):
        # Lists never show the body of up to USAGE_MAX_PAYLOAD_BYTES. The detail page loads it with one more query.
        return super().get_queryset(request).defer("body")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="envelope (payload under data)")
    def envelope(self, event: Event):
        try:
            shown = json.dumps(json.loads(event.body), indent=2, ensure_ascii=False)
        except ValueError:
            shown = event.body
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', shown)

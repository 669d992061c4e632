from django.contrib import admin
from django.utils.html import format_html_join

from dispatcher.admin_tools import LargeTableAdmin, TenantIdFilter
from endpoints.models import Endpoint

# Shown in place of every custom header value, which may carry a credential of the receiver.
MASKED_VALUE = "••••••"


@admin.register(Endpoint)
class EndpointAdmin(LargeTableAdmin):
    """Endpoints without their signing secrets and with custom header values masked."""

    list_display = ("url", "tenant", "enabled", "disabled_reason", "created_at", "deleted_at")
    list_select_related = ("tenant",)
    list_filter = ("enabled", TenantIdFilter, "created_at")
    raw_id_fields = ("tenant",)
    search_fields = ("url",)
    fields = ("id", "tenant", "url", "description", "event_types", "masked_headers", "enabled", "disabled_reason",
              "created_at", "updated_at", "deleted_at")
    readonly_fields = ("id", "tenant", "url", "event_types", "masked_headers", "created_at", "updated_at",
                       "deleted_at")

    def has_add_permission(self, request):
        # An endpoint needs a URL check and a signing secret, which the API provides.
        return False

    def has_delete_permission(self, request, obj=None):
        # DELETE /v1/endpoints/{id} hides an endpoint and keeps its history, which a row delete would drop.
        return False

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.deleted_at is not None:
            return self.fields
        return self.readonly_fields

    @admin.display(description="headers")
    def masked_headers(self, endpoint: Endpoint):
        if not endpoint.headers:
            return "-"
        return format_html_join("\n", "<div>{}: {}</div>", ((name, MASKED_VALUE) for name in endpoint.headers))

    def save_model(self, request, obj, form, change):
        if "enabled" in form.changed_data and obj.enabled:
            obj.disabled_reason = ""
        super().save_model(request, obj, form, change)

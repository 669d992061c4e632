from django.contrib import admin, messages

from dispatcher.admin_tools import LargeTableAdmin
from tenants import services
from tenants.models import ApiKey, Tenant


@admin.register(Tenant)
class TenantAdmin(LargeTableAdmin):
    list_display = ("name", "id", "disabled", "created_at")
    list_filter = ("disabled",)
    search_fields = ("name",)
    readonly_fields = ("id", "created_at", "updated_at")


@admin.register(ApiKey)
class ApiKeyAdmin(LargeTableAdmin):
    """API keys by prefix only: the hash is never shown, and new keys come from the API or create_api_key."""

    list_display = ("prefix", "tenant", "created_at", "revoked_at")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    search_fields = ("=prefix",)
    fields = ("id", "tenant", "prefix", "created_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Only the revoke action changes a key, so the detail page is read-only.
        return obj is None and super().has_change_permission(request)

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            services.revoke_api_key(api_key)
        self.message_user(request, f"Revoked {len(keys)} API keys.", messages.SUCCESS)

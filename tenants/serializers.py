from dispatcher.fields import StrictBooleanField, StrictCharField, StrictIntegerField, StrictSerializer
from tenants.models import Tenant

LIMIT_OVERRIDE_FIELDS = (
    "monthly_event_limit", "monthly_attempt_limit", "max_endpoints", "max_payload_bytes",
    "max_fanout_endpoints", "events_per_minute", "endpoint_creates_per_hour",
)


def _override_field():
    return StrictIntegerField(required=False, allow_null=True, min_value=0, max_value=2_000_000_000)


class TenantInputSerializer(StrictSerializer):
    name = StrictCharField(max_length=200, trim_whitespace=True)
    disabled = StrictBooleanField(required=False)
    monthly_event_limit = _override_field()
    monthly_attempt_limit = _override_field()
    max_endpoints = _override_field()
    max_payload_bytes = _override_field()
    max_fanout_endpoints = _override_field()
    events_per_minute = _override_field()
    endpoint_creates_per_hour = _override_field()


def tenant_to_dict(tenant: Tenant) -> dict:
    data = {"id": str(tenant.id), "name": tenant.name, "disabled": tenant.disabled}
    data["limit_overrides"] = {name: getattr(tenant, name) for name in LIMIT_OVERRIDE_FIELDS}
    data["created_at"] = tenant.created_at
    data["updated_at"] = tenant.updated_at
    return data

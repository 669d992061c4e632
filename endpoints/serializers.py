from rest_framework import serializers

from dispatcher.fields import StrictBooleanField, StrictCharField, StrictSerializer
from dispatcher.problems import unprocessable
from endpoints import netpolicy, validation
from endpoints.models import Endpoint
from endpoints.secrets import InvalidSecret, decode_secret


class EndpointInputSerializer(StrictSerializer):
    url = StrictCharField(max_length=2048, trim_whitespace=False)
    description = StrictCharField(max_length=500, required=False, allow_blank=True)
    event_types = serializers.JSONField(required=False)
    headers = serializers.JSONField(required=False)
    enabled = StrictBooleanField(required=False)
    signing_secret = StrictCharField(required=False, write_only=True, trim_whitespace=False, max_length=200)

    def validate_url(self, value: str) -> str:
        try:
            return netpolicy.validate_destination(value)
        except netpolicy.DestinationError as error:
            raise unprocessable(str(error), error.code) from None

    def validate_event_types(self, value) -> list[str]:
        return validation.validate_event_types(value)

    def validate_headers(self, value) -> dict:
        return validation.validate_headers(value)

    def validate_signing_secret(self, value: str) -> str:
        if self.partial:
            raise unprocessable("signing_secret cannot be changed here; use POST /v1/endpoints/{id}/rotate-secret",
                                "invalid_signing_secret")
        try:
            decode_secret(value)
        except InvalidSecret as error:
            raise unprocessable(str(error), "invalid_signing_secret") from None
        return value


def endpoint_to_dict(endpoint: Endpoint) -> dict:
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "headers": endpoint.headers,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }

"""Serializer plumbing that rejects wrong JSON types and unknown fields instead of coercing them."""

import datetime as dt
import uuid

from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from dispatcher.problems import bad_request, not_found


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(f"must be a string, not {type(data).__name__}")
        if not is_encodable(data):
            raise serializers.ValidationError("contains an unpaired surrogate escape such as \\ud800")
        return super().to_internal_value(data)


def is_encodable(text: str) -> bool:
    """Return whether a string can be stored as UTF-8; JSON may carry lone surrogates that cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"must be true or false, not {type(data).__name__}")
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError(f"must be a whole number, not {type(data).__name__}")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """A serializer that rejects with 400 a body that is not an object or names fields it cannot set."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise bad_request("request body must be a JSON object")
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(data) - writable)
        if unknown:
            raise bad_request(
                f"fields {unknown} cannot be set; writable fields are {sorted(writable)}",
                "unknown_fields", errors={name: ["cannot be set"] for name in unknown},
            )
        return super().to_internal_value(data)


def parse_uuid(value: str, what: str = "object") -> uuid.UUID:
    """Parse an id from a path or query; a malformed id is simply not found."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise not_found(f"{what} {value!r} not found") from None


def query_uuid(request, name: str) -> uuid.UUID | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise bad_request(f"query parameter {name}={value!r} is not a UUID", "invalid_query") from None


def parse_instant(value: str) -> dt.datetime | None:
    """Parse an ISO 8601 time or date; a value without a zone is taken as UTC. Returns None when malformed."""
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = dt.datetime(day.year, day.month, day.day)
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


def query_datetime(request, name: str) -> dt.datetime | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    parsed = parse_instant(value)
    if parsed is None:
        raise bad_request(f"query parameter {name}={value!r} is not an ISO 8601 time such as 2026-01-31T12:00:00Z",
                          "invalid_query")
    return parsed

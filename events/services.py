import datetime as dt
import json
import math
import logging
import re
import uuid

from django.db import transaction
from django.utils import timezone

from dispatcher.problems import bad_request
from dispatcher.queueing import FAN_OUT_TASK, send_task_after_commit
from events.models import Event
from tenants.models import Tenant

logger = logging.getLogger(__name__)

EVENT_TYPE_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON; send numbers only")


def _finite_float(text: str) -> float:
    """Parse a JSON number, rejecting ones too large for a float (1e999 would become Infinity)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range; send it as a string")
    return value


def parse_event_body(raw: bytes) -> tuple[str, object]:
    """Parse and check a POST /v1/events body; returns (type, payload) or raises a 400 Problem."""
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise bad_request("request body is not UTF-8; send JSON encoded as UTF-8", "malformed_json") from None
    except ValueError as error:
        raise bad_request(f"request body is not valid JSON: {error}", "malformed_json") from None
    if not isinstance(document, dict):
        raise bad_request("request body must be a JSON object with 'type' and 'payload'")
    unknown = sorted(set(document) - {"type", "payload", "data"})
    if unknown:
        raise bad_request(f"fields {unknown} cannot be set; an event has 'type' and 'payload'", "unknown_fields",
                          errors={name: ["cannot be set"] for name in unknown})
    return _event_type(document.get("type")), _payload(document)


def _event_type(value) -> str:
    if not isinstance(value, str) or not EVENT_TYPE_PATTERN.fullmatch(value):
        shown = value if isinstance(value, str) and len(value) <= 140 else type(value).__name__
        raise bad_request(
            f"type {shown!r} is invalid: use 1 to 128 characters from A-Z, a-z, 0-9, '_', '.', '-'",
            errors={"type": ["invalid event type"]},
        )
    return value


def _payload(document: dict):
    if "payload" in document and "data" in document:
        raise bad_request("send the event data as 'payload' or 'data', not both", errors={"payload": ["duplicate"]})
    if "payload" not in document and "data" not in document:
        raise bad_request("'payload' is missing: send the event data as a JSON object", errors={"payload": ["required"]})
    payload = document.get("payload", document.get("data"))
    if not isinstance(payload, dict):
        raise bad_request("'payload' must be a JSON object", errors={"payload": ["must be an object"]})
    return payload


def query_event_type(value: str) -> str:
    if not EVENT_TYPE_PATTERN.fullmatch(value):
        raise bad_request(f"query parameter type={value[:140]!r} is invalid: use 1 to 128 characters from A-Z, a-z, "
                          "0-9, '_', '.', '-'", "invalid_query")
    return value


def build_envelope(event_id: uuid.UUID, event_type: str, created_at: dt.datetime, payload) -> str:
    """Serialize the delivery body once: compact JSON, UTF-8 text kept as is."""
    envelope = {
        "id": str(event_id),
        "type": event_type,
        "timestamp": created_at.isoformat().replace("+00:00", "Z"),
        "data": payload,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def accept_event(tenant: Tenant, event_type: str, payload) -> Event:
    """Store an event; its fan-out task is enqueued only once the transaction commits."""
    event_id = uuid.uuid4()
    created_at = timezone.now()
    body = build_envelope(event_id, event_type, created_at, payload)
    try:
        body_bytes = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        # JSON allows escapes of lone UTF-16 surrogates such as "\ud800", which UTF-8 cannot carry.
        raise bad_request("payload contains an unpaired surrogate escape such as \\ud800; send valid Unicode text",
                          "malformed_json") from None
    event = Event.objects.create(
        id=event_id, tenant=tenant, type=event_type, body=body, body_bytes=body_bytes, created_at=created_at,
    )
    transaction.on_commit(lambda: send_task_after_commit(FAN_OUT_TASK, str(event.id)))
    return event

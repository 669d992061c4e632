"""Rules for endpoint fields that tenants set: event type filters and static custom headers."""

import re

from dispatcher.problems import bad_request, unprocessable

EVENT_FILTER_PATTERN = re.compile(r"\*|[A-Za-z0-9_.\-]{1,128}|[A-Za-z0-9_.\-]{1,126}\.\*")
MAX_EVENT_FILTERS = 100
# RFC 9110 field names are tokens.
HEADER_NAME_PATTERN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
MAX_CUSTOM_HEADERS = 20
MAX_HEADER_VALUE_BYTES = 1024
RESERVED_HEADER_NAMES = frozenset({
    "host", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "expect", "user-agent",
    # The client never decompresses, so a receiver must not be invited to compress its response.
    "accept-encoding",
})
RESERVED_HEADER_PREFIXES = ("webhook-", "content-", "proxy-")


def validate_event_types(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_request("event_types must be a list of strings such as ['invoice.paid', 'order.*']",
                          errors={"event_types": ["must be a list of strings"]})
    if len(value) > MAX_EVENT_FILTERS:
        raise unprocessable(f"event_types has {len(value)} entries; at most {MAX_EVENT_FILTERS} are allowed",
                            "invalid_event_types")
    for item in value:
        if not EVENT_FILTER_PATTERN.fullmatch(item):
            raise unprocessable(
                f"event type filter {item[:140]!r} is invalid: use a type such as 'invoice.paid', "
                "a prefix wildcard such as 'order.*', or '*'", "invalid_event_types",
            )
    return list(dict.fromkeys(value))


def validate_headers(value) -> dict[str, str]:
    """Check custom headers; messages name the header but never echo its value."""
    if not isinstance(value, dict):
        raise bad_request("headers must be a JSON object of header names to string values",
                          errors={"headers": ["must be an object"]})
    if len(value) > MAX_CUSTOM_HEADERS:
        raise unprocessable(f"headers has {len(value)} entries; at most {MAX_CUSTOM_HEADERS} are allowed",
                            "invalid_headers")
    seen = set()
    for name, header_value in value.items():
        _check_header_name(name)
        if name.lower() in seen:
            raise unprocessable(f"header {name!r} appears twice (names are case-insensitive)", "invalid_headers")
        seen.add(name.lower())
        _check_header_value(name, header_value)
    return dict(value)


def _check_header_name(name: str) -> None:
    if not HEADER_NAME_PATTERN.fullmatch(name):
        raise unprocessable(
            f"header name {name[:80]!r} is invalid: use 1 to 64 token characters (letters, digits, '-')",
            "invalid_headers",
        )
    lowered = name.lower()
    if lowered in RESERVED_HEADER_NAMES or lowered.startswith(RESERVED_HEADER_PREFIXES):
        raise unprocessable(f"header {name!r} is reserved: the dispatcher sets it itself", "invalid_headers")


def _check_header_value(name: str, value) -> None:
    if not isinstance(value, str):
        raise unprocessable(f"header {name!r} must have a string value, not {type(value).__name__}",
                            "invalid_headers")
    if not value.isascii():
        raise unprocessable(f"header {name!r} value must be ASCII", "invalid_headers")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise unprocessable(f"header {name!r} contains a control character such as CR or LF", "invalid_headers")
    if value != value.strip(" \t"):
        raise unprocessable(f"header {name!r} value has leading or trailing whitespace; remove it", "invalid_headers")
    if len(value.encode("utf-8")) > MAX_HEADER_VALUE_BYTES:
        raise unprocessable(f"header {name!r} value is longer than {MAX_HEADER_VALUE_BYTES} bytes",
                            "invalid_headers")

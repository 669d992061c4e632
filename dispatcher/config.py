"""Typed readers for environment variables that stop start-up on a malformed value.

Every reader names the variable and the bad value in its error, so an operator can fix the
environment without reading code.
"""

import base64
import ipaddress
import json
import os
import secrets
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

ENVIRONMENTS = ("development", "test", "production")


def _fail(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is invalid: expected {expected}")


def read_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def read_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = read_str(name, default).lower()
    if value not in choices:
        raise _fail(name, value, "one of " + ", ".join(choices))
    return value


def read_bool(name: str, default: bool) -> bool:
    raw = read_str(name)
    if not raw:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise _fail(name, raw, "true or false")


def read_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = read_str(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _fail(name, raw, "a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise _fail(name, raw, f"a whole number {bound}")
    return value


def read_float(name: str, default: float, minimum: float = 0.001, maximum: float = 3600) -> float:
    raw = read_str(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _fail(name, raw, "a number of seconds") from None
    if not minimum <= value <= maximum:
        raise _fail(name, raw, f"a number of seconds between {minimum} and {maximum}")
    return value


def read_int_list(name: str, default: str, minimum: int = 0) -> list[int]:
    raw = read_str(name, default)
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise _fail(name, raw, "comma-separated whole numbers of seconds") from None
    if not values or any(value < minimum for value in values):
        raise _fail(name, raw, f"at least one whole number, each at least {minimum}")
    return values


def read_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in read_str(name, default).split(",") if part.strip()]


def read_cidrs(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for part in read_list(name, ""):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise _fail(name, part, "comma-separated CIDR blocks such as 127.0.0.1/32") from None
    return networks


def read_url(name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = read_str(name) or default
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in schemes:
        raise _fail(name, value, "a URL starting with " + " or ".join(s + "://" for s in schemes))
    return value


def read_fernet_keys(name: str) -> list[str]:
    return read_fernet_keys_value(read_str(name), name)


def read_fernet_keys_value(raw: str, name: str = "DISPATCHER_ENCRYPTION_KEYS") -> list[str]:
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    for key in keys:
        try:
            decoded = base64.urlsafe_b64decode(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                f"{name} holds an invalid key (starting {key[:4]!r}): each key must be a Fernet key, "
                "32 url-safe base64-encoded bytes; make one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            )
    return keys


def load_local_secrets(path: Path, announce: bool) -> dict[str, str]:
    """Load or create the local secrets file; with `announce`, print the admin key to stderr when it is made."""
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ADMIN_API_KEY": "adm_" + secrets.token_urlsafe(32),
        "DISPATCHER_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    if announce:
        print(f"Generated development secrets in {path}.", file=sys.stderr)
        print(f"ADMIN_API_KEY={values['ADMIN_API_KEY']}  (shown once; it stays in {path})", file=sys.stderr)
    return values

"""Standard Webhooks signing secrets: generation, strict parsing and signatures."""

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
GENERATED_SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


class InvalidSecret(ValueError):
    pass


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """Return the HMAC key of a `whsec_` secret, decoding base64 strictly."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("signing_secret must start with 'whsec_' followed by base64 of 24 to 64 random bytes")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("signing_secret is not valid base64 after 'whsec_'") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(
            f"signing_secret decodes to {len(key)} bytes; it must decode to {MIN_SECRET_BYTES} to "
            f"{MAX_SECRET_BYTES} bytes"
        )
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the `v1,` signature over `{id}.{timestamp}.{body}`."""
    signed = f"{message_id}.{timestamp}.".encode("utf-8") + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(keys: list[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """Sign with every key, space-separated, as receivers accept any one of them."""
    return " ".join(sign(key, message_id, timestamp, body) for key in keys)

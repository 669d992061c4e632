"""Encryption of secrets at rest with a rotatable list of Fernet keys (newest first)."""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.DISPATCHER_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt with any configured key; raises InvalidToken when none fits."""
    return _current().decrypt(token.encode("ascii")).decode("utf-8")


def reencrypt(token: str) -> str:
    """Re-encrypt under the newest key (MultiFernet.rotate keeps the original timestamp)."""
    return _current().rotate(token.encode("ascii")).decode("ascii")


__all__ = ["encrypt", "decrypt", "reencrypt", "InvalidToken"]

"""`Idempotency-Key` on POST /v1/events: claim, replay, conflict and release.

A request claims its key with one insert that conflicts on (tenant, key), committed on its
own before any event is written, so a concurrent request with the same key sees the claim at
once (409) instead of waiting on a lock. The event transaction marks the claim completed and
stores the response, so an event and its stored response commit together. A request that
fails releases its claim, so the key can be used again.
"""

import dataclasses
import datetime as dt
import hashlib
import logging
import re
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dispatcher.problems import Problem, bad_request, conflict
from limits.models import IdempotencyKey, IdempotencyStatus
from tenants.models import Tenant

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
# 1 to 255 printable ASCII characters, space included.
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")
# Seconds a claim blocks other requests with its key; after that a crashed request's claim may
# be taken over. A request that is still running then cannot complete its claim and rolls back.
CLAIM_LOCK_SECONDS = 30
# Retry-After seconds sent to a repeat while the first request is still in progress.
IN_PROGRESS_RETRY_SECONDS = 1


@dataclasses.dataclass
class StoredResponse:
    status: int
    body: str


class Claim:
    """A request's hold on an idempotency key; a request without a key gets an empty claim."""

    def __init__(self, row: IdempotencyKey | None = None, replay: StoredResponse | None = None):
        self.row = row
        self.replay = replay

    def complete(self, status: int, body: str, event_id) -> None:
        """Store the response; call inside the transaction that stores the event."""
        if self.row is None:
            return
        updated = IdempotencyKey.objects.filter(id=self.row.id, claim_token=self.row.claim_token).update(
            status=IdempotencyStatus.COMPLETED, response_status=status, response_body=body, event_id=event_id,
        )
        if not updated:
            raise _in_progress(self.row.key)

    def release(self) -> None:
        """Delete an uncompleted claim, so a failed request leaves the key free."""
        if self.row is None:
            return
        IdempotencyKey.objects.filter(
            id=self.row.id, claim_token=self.row.claim_token, status=IdempotencyStatus.IN_PROGRESS
        ).delete()
        logger.info("idempotency key %s of tenant %s released after a failed request", self.row.id,
                    self.row.tenant_id)


def parse_key(request) -> str | None:
    """Return the request's Idempotency-Key, None when absent, or raise 400 when malformed."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not KEY_PATTERN.fullmatch(value):
        raise bad_request(f"{HEADER} must be 1 to 255 printable ASCII characters; got {len(value)} characters "
                          "that include an empty, non-ASCII or control character", "invalid_idempotency_key")
    return value


def claim(tenant: Tenant, key: str | None, body: bytes) -> Claim:
    """Claim `key` for this request, or return the stored response to replay.

    Raises 422 when the key was used with another body and 409 while another request holds it.
    """
    if key is None:
        return Claim()
    fingerprint = hashlib.sha256(body).hexdigest()
    row = _insert(tenant, key, fingerprint)
    if row is not None:
        return Claim(row)

    existing = IdempotencyKey.objects.filter(tenant=tenant, key=key).first()
    if existing is None:
        # The holder released the key between the insert and this read; try once more.
        row = _insert(tenant, key, fingerprint)
        if row is not None:
            return Claim(row)
        raise _in_progress(key)
    if _is_takeable(existing):
        taken = _take_over(tenant, key, fingerprint)
        if taken is not None:
            return Claim(taken)
        raise _in_progress(key)
    return _settle(existing, fingerprint)


def _settle(existing: IdempotencyKey, fingerprint: str) -> Claim:
    if existing.fingerprint != fingerprint:
        raise Problem(422, "idempotency_key_reused", "Rejected by a rule",
                      f"{HEADER} {existing.key!r} was already used with a different request body; "
                      "use a new key for a new event")
    if existing.status != IdempotencyStatus.COMPLETED:
        raise _in_progress(existing.key)
    return Claim(replay=StoredResponse(existing.response_status, existing.response_body))


def _new_row_values(fingerprint: str) -> dict:
    now = timezone.now()
    return {
        "fingerprint": fingerprint, "status": IdempotencyStatus.IN_PROGRESS, "claim_token": uuid.uuid4(),
        "locked_until": now + dt.timedelta(seconds=CLAIM_LOCK_SECONDS), "response_status": None,
        "response_body": "", "event_id": None, "created_at": now,
        "expires_at": now + dt.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
    }


def _insert(tenant: Tenant, key: str, fingerprint: str) -> IdempotencyKey | None:
    """Insert the claim in its own committed transaction; None when the key already exists."""
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(tenant=tenant, key=key, **_new_row_values(fingerprint))
    except IntegrityError:
        return None


def _is_takeable(row: IdempotencyKey) -> bool:
    now = timezone.now()
    return row.expires_at <= now or (row.status == IdempotencyStatus.IN_PROGRESS and row.locked_until <= now)


def _take_over(tenant: Tenant, key: str, fingerprint: str) -> IdempotencyKey | None:
    """Replace an expired key or a crashed claim with one conditional update; None if another request won."""
    now = timezone.now()
    takeable = Q(expires_at__lte=now) | Q(status=IdempotencyStatus.IN_PROGRESS, locked_until__lte=now)
    values = _new_row_values(fingerprint)
    updated = IdempotencyKey.objects.filter(takeable, tenant=tenant, key=key).update(**values)
    if not updated:
        return None
    logger.info("idempotency key of tenant %s replaced after expiry or a stale claim", tenant.id)
    return IdempotencyKey.objects.filter(tenant=tenant, key=key, claim_token=values["claim_token"]).first()


def _in_progress(key: str) -> Problem:
    return conflict(f"a request with {HEADER} {key!r} is still in progress; retry in a moment",
                    "idempotency_key_in_progress", headers={"Retry-After": str(IN_PROGRESS_RETRY_SECONDS)})

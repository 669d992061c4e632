"""Re-encryption of stored signing secrets under the newest DISPATCHER_ENCRYPTION_KEYS key."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from dispatcher import crypto
from endpoints.models import EndpointSecret

logger = logging.getLogger(__name__)

# Secrets re-encrypted per transaction, so a large table is never locked at once.
REENCRYPT_BATCH_SIZE = 500


@dataclass
class RotationCounts:
    scanned: int = 0
    reencrypted: int = 0
    # Secrets that no configured key decrypts; they are left as they are.
    undecryptable: int = 0


def reencrypt_all_secrets(batch_size: int = REENCRYPT_BATCH_SIZE,
                          progress: Callable[[RotationCounts], None] | None = None) -> RotationCounts:
    """Re-encrypt every endpoint secret under the first configured key, in batches by id."""
    counts = RotationCounts()
    last_id = 0
    while True:
        last_id = _reencrypt_batch(last_id, batch_size, counts)
        if last_id is None:
            break
        if progress is not None:
            progress(counts)
    logger.info("re-encrypted %d of %d endpoint secrets; %d undecryptable", counts.reencrypted, counts.scanned,
                counts.undecryptable)
    return counts


def _reencrypt_batch(after_id: int, batch_size: int, counts: RotationCounts) -> int | None:
    """Re-encrypt the next batch after `after_id`; returns the last id seen, or None when done."""
    with transaction.atomic():
        rows = list(EndpointSecret.objects.filter(id__gt=after_id).order_by("id").select_for_update()[:batch_size])
        if not rows:
            return None
        changed = []
        for row in rows:
            try:
                row.encrypted_secret = crypto.reencrypt(row.encrypted_secret)
            except crypto.InvalidToken:
                counts.undecryptable += 1
                logger.error("endpoint secret %s of endpoint %s is not decrypted by any configured key",
                             row.id, row.endpoint_id)
                continue
            changed.append(row)
        EndpointSecret.objects.bulk_update(changed, ["encrypted_secret"])
    counts.scanned += len(rows)
    counts.reencrypted += len(changed)
    return rows[-1].id

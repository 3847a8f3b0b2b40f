"""Signed checkpoints: the device commits to its chain head, cheaply and often.

One small signed message per round, even when no record is new: once (seq, head hash) has left
the device, rewriting any record at or below that seq contradicts a signature the platform
already holds.
"""

from __future__ import annotations

import datetime as dt
import logging

from models.db import Store
from models.records import chain_head
from sync.client import PlatformClient
from sync.signing import DeviceKey
from sync.wire import Checkpoint, CheckpointResult

log = logging.getLogger(__name__)


def make_checkpoint(store: Store, key: DeviceKey, device_id: str, now: dt.datetime) -> Checkpoint:
    with store.read() as session:
        seq, head = chain_head(session)
    return Checkpoint(
        device_id=device_id,
        seq=seq,
        head_hash=head,
        made_at=now,
        signature=key.sign_checkpoint(device_id, seq, head, now),
    )


def push_checkpoint(
    store: Store, client: PlatformClient, key: DeviceKey, device_id: str, now: dt.datetime
) -> CheckpointResult:
    """Send the current head; raises PlatformError on failure (the caller backs off)."""
    result = client.post_checkpoint(make_checkpoint(store, key, device_id, now))
    if result.status != "ok":
        log.error("platform reports a checkpoint conflict: %s", result.detail)
    return result

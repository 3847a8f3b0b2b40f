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
from sync.rollback import keep_checkpoint_ack
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
    """Send the current head; raises PlatformError on failure (the caller backs off).

    First the platform's newest ack is fetched and kept (should the local acks have been erased
    with the records they cover), then ours is pushed and its ack kept (sync/rollback.py)."""
    last = client.last_checkpoint()
    if last is not None:
        keep_checkpoint_ack(
            store, device_id, last.seq, last.head_hash, last.server_time, last.ack, now
        )
    cp = make_checkpoint(store, key, device_id, now)
    result = client.post_checkpoint(cp)
    if result.status != "ok":
        log.error("platform reports a checkpoint conflict: %s", result.detail)
    elif result.ack:
        keep_checkpoint_ack(
            store, device_id, cp.seq, cp.head_hash, result.server_time, result.ack, now
        )
    return result

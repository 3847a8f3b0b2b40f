"""The platform's signed acknowledgements: what a kiosk may rely on when it marks records
uploaded (a batch receipt) or when it checks that its chain was not rolled back (a checkpoint
ack). Both are Ed25519 signatures with the platform key over messages defined in sync/wire.py.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.wire import (
    BatchResult,
    Checkpoint,
    CheckpointResult,
    b64encode,
    checkpoint_ack_message,
    receipt_message,
)


def sign_batch(key: Ed25519PrivateKey, device_id: str, result: BatchResult) -> BatchResult:
    """The answer with a receipt over the ids the platform now holds (accepted + duplicate)."""
    held = result.accepted + result.duplicate
    signature = key.sign(receipt_message(device_id, result.server_time, held))
    return result.model_copy(update={"receipt": b64encode(signature)})


def sign_checkpoint(
    key: Ed25519PrivateKey, cp: Checkpoint, result: CheckpointResult
) -> CheckpointResult:
    """An accepted checkpoint gets the platform's ack; a conflict gets none."""
    if result.status != "ok":
        return result
    message = checkpoint_ack_message(cp.device_id, cp.seq, cp.head_hash, result.server_time)
    return result.model_copy(update={"ack": b64encode(key.sign(message))})

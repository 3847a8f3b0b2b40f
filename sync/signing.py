"""The device's Ed25519 key: generated once at provisioning, kept in a 0600 file outside the DB.

The private key never goes into the SQLite file: a copy of the database (a backup, a technician's
laptop) must not be enough to forge records. Under systemd the key is delivered as a credential
(`LoadCredential=device-key:...` -> `$CREDENTIALS_DIRECTORY/device-key`); otherwise it lives in
`<data-dir>/keys/device.key`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sync.wire import (
    b64encode,
    book_receipt_message,
    checkpoint_ack_message,
    checkpoint_message,
    public_key_from_b64,
    receipt_message,
    record_message,
    roster_message,
    verify,
)

log = logging.getLogger(__name__)

KEY_FILE = Path("keys") / "device.key"
CREDENTIAL_NAME = "device-key"


class DeviceKeyError(Exception):
    """The device key is missing, unreadable or too widely readable."""


def default_key_path(data_dir: Path) -> Path:
    """$CREDENTIALS_DIRECTORY/device-key under systemd, else <data-dir>/keys/device.key.

    An empty credential is install.sh's placeholder before provisioning: not a key."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    cred = Path(cred_dir) / CREDENTIAL_NAME if cred_dir else None
    if cred is not None and cred.is_file() and cred.stat().st_size > 0:
        return cred
    return data_dir / KEY_FILE


@dataclass(frozen=True)
class DeviceKey:
    private: Ed25519PrivateKey

    @property
    def public_key_b64(self) -> str:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return b64encode(raw)

    def sign_record(self, record_hash: str) -> str:
        return b64encode(self.private.sign(record_message(record_hash)))

    def record_ok(self, record_hash: str, signature_b64: str) -> bool:
        """Was this record signed by this device's key? (models.chain.SignatureCheck)"""
        return verify(self.private.public_key(), record_message(record_hash), signature_b64)

    def sign_checkpoint(
        self, device_id: str, seq: int, head_hash: str, made_at: dt.datetime
    ) -> str:
        return b64encode(self.private.sign(checkpoint_message(device_id, seq, head_hash, made_at)))


def generate_device_key(path: Path) -> DeviceKey:
    """Create a new key file (mode 0600, directory 0700); refuses to overwrite an existing one.

    Overwriting would orphan every record signed so far, so a second provisioning must be an
    explicit decision (delete the file and re-register the device).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_EXCL + mode at creation: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    log.info("generated device key %s", path)
    return DeviceKey(private)


def load_device_key(path: Path) -> DeviceKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise DeviceKeyError(f"device key {path} cannot be read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DeviceKeyError(
            f"device key {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            "run chmod 600 on it"
        )
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise DeviceKeyError(f"device key {path} is not a PEM private key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise DeviceKeyError(f"device key {path} is not an Ed25519 key")
    return DeviceKey(private)


def load_or_generate_device_key(path: Path) -> DeviceKey:
    if path.exists():
        return load_device_key(path)
    return generate_device_key(path)


def record_signing_key(data_dir: Path) -> DeviceKey:
    """The key the daemon signs each record with, in the transaction that inserts it.

    The provisioned credential when there is one; before provisioning (a demo, a laptop, a
    terminal still offline) the data directory's own key, created on first use, so that
    records are signed from the first tap. Raises DeviceKeyError for a key that exists but
    cannot be used (wrong mode, not a key): records are then refused rather than stored
    unsigned, and health says why.
    """
    return load_or_generate_device_key(default_key_path(data_dir))


@dataclass(frozen=True)
class PlatformVerifier:
    """Checks what the platform signs (rosters) against its published public key."""

    public_key: Ed25519PublicKey

    @classmethod
    def from_b64(cls, text: str) -> PlatformVerifier:
        return cls(public_key_from_b64(text))

    def roster_ok(self, payload_text: str, signature_b64: str) -> bool:
        return verify(self.public_key, roster_message(payload_text), signature_b64)

    def receipt_ok(
        self, device_id: str, server_time: str, record_ids: list[str], signature_b64: str
    ) -> bool:
        """A batch receipt: the platform holds exactly `record_ids` of this device."""
        at = dt.datetime.fromisoformat(server_time)
        return verify(self.public_key, receipt_message(device_id, at, record_ids), signature_b64)

    def book_receipt_ok(
        self, device_id: str, server_time: str, entry_ids: list[str], signature_b64: str
    ) -> bool:
        """A books receipt: the platform holds exactly these book entries of this device."""
        at = dt.datetime.fromisoformat(server_time)
        return verify(
            self.public_key, book_receipt_message(device_id, at, entry_ids), signature_b64
        )

    def checkpoint_ack_ok(
        self, device_id: str, seq: int, head_hash: str, server_time: str, signature_b64: str
    ) -> bool:
        """A checkpoint ack: the platform accepted this device's chain up to (seq, head)."""
        at = dt.datetime.fromisoformat(server_time)
        message = checkpoint_ack_message(device_id, seq, head_hash, at)
        return verify(self.public_key, message, signature_b64)

"""`kiosk provision`: register a terminal with the county platform, once, safely twice.

Generates the device's Ed25519 signing key, registers its public key with the platform using a
one-time enrolment code that the township operator issued for this meal point (the platform
answers with the device's bearer token), and stores key and token as 0600 files in the
credentials directory that systemd's LoadCredential= reads. Running it again on a provisioned
terminal changes nothing and prints the same summary. If the platform's answer was lost, running
it again with the same code gets the token (the request proves it holds the key). The code is
read from a file or stdin, never from the command line.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from base64 import b64decode
from dataclasses import dataclass
from pathlib import Path

import httpx

from kiosk.secret_files import SecretFileError, create_private_file, read_private_file
from sync.signing import load_device_key, load_or_generate_device_key
from sync.wire import b64encode, enrolment_message

log = logging.getLogger(__name__)

KEY_NAME = "device-key"
TOKEN_NAME = "device-token"
TIMEOUT_S = 15.0
MAX_CODE_LEN = 256


class ProvisionError(Exception):
    """Provisioning failed; the message says why and what to do."""


@dataclass(frozen=True)
class Provisioned:
    device_id: str
    point_id: str
    platform: str
    fingerprint: str  # of the public key, for the technician's sheet and the county's records
    credentials_dir: Path
    newly_registered: bool


def fingerprint(public_key_b64: str) -> str:
    digest = hashlib.sha256(b64decode(public_key_b64)).hexdigest()[:20].upper()
    return "-".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def _read_secret(path: Path) -> bytes | None:
    """A secret file's bytes, None if absent; a symlink or a file others may read is refused
    (kiosk.secret_files), never read through."""
    try:
        return read_private_file(path)
    except FileNotFoundError:
        return None
    except SecretFileError as exc:
        raise ProvisionError(str(exc)) from None


def read_code(source: str) -> str:
    """The enrolment code from a file, or stdin for "-": never from argv, where `ps` shows it."""
    if source == "-":
        text = sys.stdin.readline()
    else:
        try:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ProvisionError(f"cannot read the enrolment code from {source}: {exc}") from None
        text = lines[0] if lines else ""
    code = text.strip()
    if not code or len(code) > MAX_CODE_LEN:
        raise ProvisionError(f"no enrolment code in {'stdin' if source == '-' else source}")
    return code


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", ""))[:200]
    except (ValueError, AttributeError):
        return resp.text[:200]


def provision(
    platform: str,
    device_id: str,
    point_id: str,
    enrolment_code: str,
    credentials_dir: Path,
    adopt_key: Path | None = None,
) -> Provisioned:
    """`adopt_key`: the data directory's key, with which the daemon signed the records it made
    before provisioning (records are signed at insert): registering that key keeps them valid."""
    credentials_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, token_path = credentials_dir / KEY_NAME, credentials_dir / TOKEN_NAME
    # install.sh leaves empty placeholders so that LoadCredential= finds the files.
    if key_path.exists() and key_path.stat().st_size == 0:
        key_path.unlink()
    if not key_path.exists() and adopt_key is not None and adopt_key.is_file():
        adopted = load_device_key(adopt_key)  # refuses a key that is not one
        raw = _read_secret(adopt_key)  # the bytes checked are the bytes copied
        if raw is None:
            raise ProvisionError(f"the data directory's device key {adopt_key} vanished")
        create_private_file(key_path, raw)
        log.info("adopted the data directory's device key %s", adopted.public_key_b64)
    key = load_or_generate_device_key(key_path)
    result = Provisioned(
        device_id, point_id, platform, fingerprint(key.public_key_b64), credentials_dir, False
    )
    held = _read_secret(token_path)
    if held is not None and held.strip():
        return result  # already provisioned: nothing to do, nothing overwritten

    code = enrolment_code.strip()
    if not code.isascii() or not code.isprintable():
        raise ProvisionError("the enrolment code has characters that cannot be one")
    # Proof that this terminal holds the key it enrols: lets a retry after a lost answer succeed.
    proof = b64encode(key.private.sign(enrolment_message(device_id, point_id, code)))
    try:
        resp = httpx.post(
            f"{platform.rstrip('/')}/v1/devices",
            json={"device_id": device_id, "point_id": point_id, "public_key": key.public_key_b64},
            headers={"Authorization": f"Bearer {code}", "X-Device-Proof": proof},
            timeout=TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        raise ProvisionError(f"cannot reach the platform at {platform}: {exc}") from None
    detail = _detail(resp)
    if resp.status_code == 409:
        raise ProvisionError(
            f"the platform refused: {detail}. If {device_id} was enrolled before with another "
            f"key, ask the township operator to re-key or retire it, or use a new device id."
        )
    if resp.status_code in (401, 403):
        raise ProvisionError(
            f"the platform refused the enrolment code: {detail}. Ask the township operator for "
            f"a new code for meal point {point_id}."
        )
    if resp.status_code != 201:
        raise ProvisionError(f"registration failed: HTTP {resp.status_code}: {resp.text[:200]}")
    try:
        token = str(resp.json()["token"])
    except (ValueError, KeyError, TypeError):
        raise ProvisionError("the platform's answer has no device token") from None
    # 0600 from creation, renamed into place: never readable by others, not even briefly.
    create_private_file(token_path, (token + "\n").encode())
    return Provisioned(
        device_id, point_id, platform, result.fingerprint, credentials_dir, newly_registered=True
    )

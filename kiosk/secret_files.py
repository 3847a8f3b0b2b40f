"""Reading and creating secret files (device token, web secret) without trusting their setup.

A secret file is refused, with a message saying what to do, when it is a symlink (whoever can
point it elsewhere can make us read their key, or overwrite another file when we create it) or
when its mode lets anyone but the owner read it, or anyone write it. Files the kiosk makes itself
(`<data-dir>/web-secret`) must be 0600 or 0400. Files systemd hands over in
$CREDENTIALS_DIRECTORY may also be group-readable (systemd grants the service user read access
by ACL, which shows as the group bits), never readable by others.

New files are created with O_EXCL | O_NOFOLLOW at mode 0600 and moved into place with rename,
which replaces a directory entry and never writes through a link.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class SecretFileError(ValueError):
    """A secret file exists but must not be used; the message says why and what to do."""


def read_private_file(path: Path, *, group_read_ok: bool = False) -> bytes:
    """The bytes of `path`; FileNotFoundError if absent; SecretFileError if unsafe."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SecretFileError(
                f"{path} is a symlink; refusing to read a secret through it "
                "(replace it with the file itself, mode 0600)"
            ) from None
        raise
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError(f"{path} is not a regular file")
        check_mode(path, info.st_mode, group_read_ok=group_read_ok)
        return fh.read()


def check_mode(path: Path, mode: int, *, group_read_ok: bool = False) -> None:
    allowed = 0o640 if group_read_ok else 0o600  # owner rw (+ group r for systemd credentials)
    extra = stat.S_IMODE(mode) & ~allowed
    if extra:
        want = "0600 or 0400" + (" (0440 from systemd)" if group_read_ok else "")
        raise SecretFileError(
            f"{path} has mode {stat.S_IMODE(mode):04o}: others may read or change this secret; "
            f"refusing it (run chmod 600 {path}; expected {want})"
        )


def create_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` at mode 0600: a fresh file (never through an existing link),
    renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise

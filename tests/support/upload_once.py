"""One upload round in its own process (for the power-failure test, which SIGKILLs it)."""

from __future__ import annotations

import sys
from pathlib import Path

from models.db import Store
from sync.client import PlatformClient
from sync.signing import load_device_key
from sync.uploader import Uploader

if __name__ == "__main__":
    db, url, token, key, device_id = sys.argv[1:6]
    store = Store(Path(db))
    uploader = Uploader(store, PlatformClient(url, token), load_device_key(Path(key)), device_id)
    result = uploader.run_round()
    sys.stdout.write(f"{result}\n")

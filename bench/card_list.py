"""`python -m bench.card_list`: the size of a county-wide card list for roaming elders (issue 14,
point 2), in the compact form docs/scale.md proposes, for 20,000 elders at 200 points.

Each entry is what a kiosk needs to record a visitor meal and show the caregiver who it is:
card UID, platform elder id, home point, display name, status. The list is sorted by card UID,
serialised as compact JSON arrays, gzip-compressed, and signed (Ed25519 over its SHA-256) the
way rosters are. Prints the sizes; writes nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import sys

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "秀英兰桂芳玉珍华明国建伟军福德生春梅淑凤荣"


def entries(n: int, points: int, seed: int = 14) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        out.append(
            [
                f"{rng.getrandbits(32):08X}",  # 4-byte MIFARE UID as the kiosk normalises it
                f"141129{i:08d}",  # platform elder id
                f"ZY-{i % points:03d}",  # home point
                name,
                "active" if rng.random() > 0.02 else "suspended",
            ]
        )
    return sorted(out)


def main(n: int = 20_000, points: int = 200) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    rows = entries(n, points)
    body = json.dumps(
        {"version": 1, "county": "141129", "fields": ["card", "elder", "home", "name", "status"],
         "entries": rows},
        ensure_ascii=False, separators=(",", ":"),
    ).encode()  # fmt: skip
    packed = gzip.compress(body, compresslevel=9)
    signature = Ed25519PrivateKey.generate().sign(hashlib.sha256(body).digest())
    without_names = json.dumps([[c, e, h, s] for c, e, h, _, s in rows]).encode()
    sys.stdout.write(
        f"{n:,} elders at {points} points: JSON {len(body):,} B, gzip {len(packed):,} B "
        f"({len(packed) / n:.1f} B/elder), signature {len(signature)} B; without names gzip "
        f"{len(gzip.compress(without_names, 9)):,} B\n"
    )


if __name__ == "__main__":
    main()

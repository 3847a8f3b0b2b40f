"""A county-sized roster file for the import tests: valid ID numbers, common names."""

from __future__ import annotations

import csv
from pathlib import Path

from kiosk.ops.roster_import import ID_CHECK, ID_WEIGHTS

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "秀英建国德明凤兰春花玉珍桂芳淑华志强"


def id_number(n: int) -> str:
    """An 18-digit resident ID number with a correct check digit (born 1940-1955)."""
    body = f"141129{1940 + n % 16}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    check = ID_CHECK[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]
    return body + check


def write_roster(path: Path, rows: int, first: int = 1, encoding: str = "utf-8") -> Path:
    """`rows` elders E000001... with cards B0000001... (hex), Chinese headers."""
    with path.open("w", encoding=encoding, newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["编号", "姓名", "身份证号", "卡号", "村民小组", "联系电话", "状态", "助餐协议"]
        )
        for n in range(first, first + rows):
            name = SURNAMES[n % 20] + GIVEN[n % 17] + GIVEN[(n // 17) % 17]
            out.writerow(
                [f"R{n:06d}", name, id_number(n), f"{0xB0000000 + n:08X}", "一组",
                 "13800000000", "正常", "是"]
            )  # fmt: skip
    return path

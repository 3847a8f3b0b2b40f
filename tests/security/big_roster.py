"""A county-sized roster file for the import tests: valid ID numbers, common names."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.support.roster import id_number

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "秀英建国德明凤兰春花玉珍桂芳淑华志强"


def nth_id_number(n: int) -> str:
    """Elder n's resident ID number, valid (born 1940-1955)."""
    return id_number(f"{1940 + n % 16}{1 + n % 12:02d}{1 + n % 28:02d}", f"{n % 1000:03d}")


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
                [f"R{n:06d}", name, nth_id_number(n), f"{0xB0000000 + n:08X}", "一组",
                 "13800000000", "正常", "是"]
            )  # fmt: skip
    return path

"""Chinese by touch: an on-screen pinyin keyboard's candidates, with no IME on the terminal.

A caregiver taps the letters of a syllable (wang) and then the character (王) among the
candidates. The candidates are the 3,755 characters of GB 2312 level 1 (the common ones), by
their toneless pinyin from pypinyin, with the common surnames and characters of names first,
since names are what the books need most (donors, payers, suppliers, inspectors).
"""

from __future__ import annotations

import functools
import re

from pypinyin import Style, lazy_pinyin

# Put first among a syllable's candidates: the most common surnames, then characters that are
# common in the given names of this generation and in village words.
FIRST = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "秀英兰桂芳玉华珍凤梅春花淑琴建国明德文志军红强平海军荣福生林村镇店铺"
)
SYLLABLE = re.compile(r"[a-z]{1,6}")
MAX_CANDIDATES = 60


@functools.cache
def _index() -> dict[str, list[str]]:
    chars = [
        bytes([hi, lo]).decode("gb2312")
        for hi in range(0xB0, 0xD8)
        for lo in range(0xA1, 0xFF)
        if not (hi == 0xD7 and lo > 0xF9)  # level 1 ends at D7F9
    ]
    rank = {c: i for i, c in enumerate(FIRST)}
    index: dict[str, list[str]] = {}
    for char in chars:
        index.setdefault(lazy_pinyin(char, style=Style.NORMAL)[0], []).append(char)
    for syllable, found in index.items():
        index[syllable] = sorted(found, key=lambda c: rank.get(c, len(rank)))
    return index


def candidates(letters: str) -> list[str]:
    """Characters whose pinyin is `letters`, else those whose pinyin starts with it."""
    letters = letters.lower()  # ü is typed as v, as pypinyin spells it (lv 绿, nv 女)
    if not SYLLABLE.fullmatch(letters):
        return []
    index = _index()
    exact = index.get(letters, [])
    if len(exact) >= MAX_CANDIDATES:
        return exact[:MAX_CANDIDATES]
    more = [
        c for s, cs in sorted(index.items()) if s != letters and s.startswith(letters) for c in cs
    ]
    return (exact + more)[:MAX_CANDIDATES]

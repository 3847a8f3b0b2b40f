"""Masking personal data shown where a passer-by can read it (the screen faces the room)."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """王秀英 -> 王*英, 王英 -> 王*, 欧阳秀英 -> 欧**英: enough for the elder to know it is him."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id_number(value: str) -> str:
    """1426...1234 -> 1426**********1234 (first four, last four), whatever the stored form."""
    value = value.strip()
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    """13812345678 -> 138****5678."""
    value = value.strip()
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]

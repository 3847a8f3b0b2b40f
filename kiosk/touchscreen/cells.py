"""Spreadsheet cells that can never run: text a spreadsheet would read as a formula.

A roster name such as `=HYPERLINK("http://...")`, `+cmd|' /C calc'!A0` or `@SUM(...)` must arrive
in the county's Excel as the text it is. The starts that make Excel, WPS and LibreOffice parse a
cell as a formula (or DDE) are = + - @ and tab, CR, LF (OWASP "CSV injection").

CSV has no types, so such text gets a leading apostrophe (Excel shows the rest as text). In XLSX
the cell is written as a string cell, so the text stays exactly as stored.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def looks_like_formula(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_START)


def csv_cell(value: object) -> object:
    """For a CSV row: text that could be read as a formula is quoted with an apostrophe."""
    return "'" + value if looks_like_formula(value) and isinstance(value, str) else value


def xlsx_row_as_text(cells: object) -> None:
    """After `ws.append(row)`: every formula-looking text cell of that row becomes a plain
    string cell (openpyxl would otherwise write it as a live formula)."""
    for cell in cells:  # type: ignore[attr-defined]
        if looks_like_formula(cell.value):
            cell.data_type = "s"

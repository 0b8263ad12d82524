"""Delimited text exports: decoding, splitting into fields with line numbers, header names.

The device exports (Dexcom, LibreView, CareLink, Nightscout's CSVs) are small text files with
vendor quirks, read whole. This module holds what they share: refusing binary junk and text that
is not UTF-8 with a clear error, splitting records while keeping the line each one starts on, and
normalising header cells (byte-order marks, mojibake of one, stray quotes, case).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from glucosestream.errors import InvalidInput

__all__ = [
    "WIDTH_PROBLEM",
    "Record",
    "amount_text",
    "decimal_point",
    "header_key",
    "header_unit",
    "minutes_text",
    "read_text",
    "split_records",
]

Record = tuple[int, list[str]]  # (1-based line the record starts on, its fields)

# A UTF-8 byte-order mark, as itself and as it reads when UTF-8 was decoded as Latin-1 and saved
# again (the Dexcom sample's "re-saved by a tool" header).
_BOM_MARKS: Final = ("\ufeff", "\u00ef\u00bb\u00bf")
_SPACES: Final = re.compile(r"\s+")
_PARENTHESES: Final = re.compile(r"\(([^)]*)\)\s*$")
_FIELD_LIMIT: Final = 1 << 20  # characters in one field; longer is not a device export

# The quarantine reason of a reading whose record is wider or narrower than its header: its
# values cannot be trusted to be in their columns (an unquoted decimal comma, a cut line).
WIDTH_PROBLEM: Final = "the record has a different number of fields than the header"
# An amount cell (insulin, carbs, a finger-stick) longer than this is no number a device wrote.
_AMOUNT_CHARS: Final = 32
# A duration as Clarity and CareLink write it: h:mm:ss (hours may pass 24 in a bad cell).
_HMS: Final = re.compile(r"(\d{1,4}):([0-5]\d):([0-5]\d)")


def read_text(path: Path, what: str) -> str:
    """The text of ``path``: UTF-8 (with or without a byte-order mark), never binary; line
    ends CR LF, LF, or (old Mac) CR only."""
    source = str(path)
    data = path.read_bytes()
    if not data.strip():
        raise InvalidInput("the file is empty; nothing to ingest", source=source)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InvalidInput(
            f"binary data (a NUL byte at offset {nul}), not a {what}; "
            "export the file again as text",
            source=source,
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InvalidInput(
            f"not UTF-8 text (byte {err.start}); export the {what} again as UTF-8 CSV",
            source=source,
            line=data.count(b"\n", 0, err.start) + 1,
        ) from err
    if "\n" not in text:
        text = text.replace("\r", "\n")  # old Mac line ends (CR only): one line each
    return text


def split_records(text: str, *, delimiter: str, source: str) -> Iterator[Record]:
    """Each non-blank record of ``text`` with the line it starts on."""
    csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    consumed = 0
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as err:
            raise InvalidInput(
                f"not valid CSV ({err}); fix or remove this line", source=source, line=consumed + 1
            ) from err
        if fields is None:
            return
        start, consumed = consumed + 1, reader.line_num
        if any(cell.strip() for cell in fields):
            yield start, fields


def header_key(cell: str) -> str:
    """A header cell reduced to compare by: no BOM marks or quotes, single spaces, lower case."""
    for mark in _BOM_MARKS:
        cell = cell.replace(mark, "")
    return _SPACES.sub(" ", cell.replace('"', "")).strip().lower()


def header_unit(cell: str) -> str:
    """The unit a header cell names: in closing parentheses (``Glucose Value (mg/dL)``) or as its
    last word (``Historic Glucose mmol/L``). Ingest quarantines readings in an unknown unit."""
    cell = cell.strip()
    match = _PARENTHESES.search(cell)
    return match.group(1).strip() if match else cell.rsplit(" ", 1)[-1]


def decimal_point(value: str) -> str:
    """A number written with a decimal comma (``119,5``), written with a point."""
    return value.strip().replace(",", ".")


def amount_text(cell: str, column: str) -> tuple[str | None, str | None]:
    """An amount cell as text with a decimal point (None when empty), and the problem of a cell
    too long to be a number (its text is then not passed on). Ingest checks the number."""
    text = decimal_point(cell)
    if len(text) > _AMOUNT_CHARS:
        return None, f"the {column} cell has {len(text)} characters, not a number"
    return text or None, None


def minutes_text(cell: str, column: str) -> tuple[str | None, str | None]:
    """A ``h:mm:ss`` duration cell as minutes, as text (None when empty), or the problem of a
    cell that is not one."""
    text = cell.strip()
    if not text:
        return None, None
    match = _HMS.fullmatch(text)
    if match is None:
        shown = text if len(text) <= _AMOUNT_CHARS else f"{text[:_AMOUNT_CHARS]}…"
        return None, f"the {column} cell {shown!r} is not a duration h:mm:ss"
    hours, minutes, seconds = (int(part) for part in match.groups())
    return repr(hours * 60 + minutes + seconds / 60), None

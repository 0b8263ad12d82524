"""Tell the format of an input file from its content, and dispatch to its parser.

Detection reads the first 64 KiB: Parquet by its magic bytes; JSON by its first character, then
by what the document holds (a FHIR ``resourceType``, Nightscout treatments: objects with an
``eventType`` and no ``sgv``, Tidepool datums, Nightscout entries, plain records); delimited
text by the header each device export writes (Dexcom Clarity, LibreView, CareLink, Nightscout's
CSVs), else plain CSV. The suffix only breaks ties: a ``.csv`` that is not text still goes to
the CSV reader, which says precisely what is wrong with it. A JSON document decoded to tell
its format is handed to its reader (``Detected``), not decoded a second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from glucosestream.errors import InvalidInput, UnknownFormat
from glucosestream.formats import carelink, dexcom, fhir, libreview, nightscout, tabular, tidepool
from glucosestream.formats.jsontext import decode_json
from glucosestream.formats.nightscout_treatments import looks_like_treatments
from glucosestream.formats.rows import ParsedFile

__all__ = ["FORMATS", "Detected", "detect", "detect_format", "read_raw_rows"]

_READERS: Final[dict[str, Callable[[Path], ParsedFile]]] = {
    "csv": tabular.read_csv,
    "jsonl": tabular.read_jsonl,
    "json": tabular.read_json_array,
    "parquet": tabular.read_parquet,
    "dexcom": dexcom.read_dexcom,
    "libreview": libreview.read_libreview,
    "carelink": carelink.read_carelink,
    "nightscout": nightscout.read_nightscout,
    "tidepool": tidepool.read_tidepool,
    "fhir": fhir.read_fhir,
}
FORMATS: Final = tuple(_READERS)
# The readers of a JSON document telling its format already decoded: it is not decoded twice.
_DOCUMENT_READERS: Final[dict[str, Callable[[Any, str], ParsedFile]]] = {
    "json": tabular.json_array_document,
    "nightscout": nightscout.nightscout_document,
    "tidepool": tidepool.tidepool_document,
    "fhir": fhir.fhir_document,
}
_BY_SUFFIX: Final = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
_HEAD_BYTES: Final = 1 << 16
_TEXT_SNIFFERS: Final = (
    ("dexcom", dexcom.looks_like_dexcom),
    ("libreview", libreview.looks_like_libreview),
    ("carelink", carelink.looks_like_carelink),
    ("nightscout", nightscout.looks_like_nightscout_csv),
)


@dataclass(frozen=True, slots=True)
class Detected:
    """A file's format, and the whole JSON document when telling the format decoded it (a
    JSON document, not JSON lines): its reader starts from it rather than decoding it again."""

    fmt: str
    document: Any = None
    decoded: bool = False


def detect_format(path: Path) -> str:
    """The format of ``path``, from its content (the suffix only when the content cannot tell)."""
    return detect(path).fmt


def detect(path: Path) -> Detected:
    """The format of ``path`` (see ``detect_format``), with the JSON document it decoded."""
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith(b"PAR1"):
        return Detected("parquet")
    if not head.strip():
        raise InvalidInput("the file is empty; nothing to ingest", source=str(path))
    text = _as_text(head)
    if text is None:
        return Detected(_by_suffix(path, "binary data, not text"))
    if text.lstrip().startswith(("{", "[")):
        return _detect_json(path, text)
    for name, looks_like in _TEXT_SNIFFERS:
        if looks_like(text):
            return Detected(name)
    return Detected("csv")


def _as_text(head: bytes) -> str | None:
    """The head decoded as UTF-8 (a character cut at the end is fine), or None for binary.
    Old Mac line ends (CR only) read as line feeds."""
    if b"\x00" in head:
        return None
    if b"\n" not in head:
        head = head.replace(b"\r", b"\n")
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:
            return None
        return head[: err.start].decode("utf-8-sig")


def _by_suffix(path: Path, why: str) -> str:
    if path.suffix.lower() in _BY_SUFFIX:
        return _BY_SUFFIX[path.suffix.lower()]
    raise UnknownFormat(
        f"cannot tell the format of this file ({why}); pass --format with one of "
        f"{', '.join(FORMATS)}",
        source=str(path),
    )


def _detect_json(path: Path, head: str) -> Detected:
    first_line = head.lstrip().split("\n", 1)[0]
    try:
        first = decode_json(first_line, source=str(path))
    except (json.JSONDecodeError, InvalidInput):
        first = None
    if isinstance(first, dict):  # JSON lines: one document a line
        return Detected("fhir" if fhir.looks_like_fhir(first) else "jsonl")
    try:
        document = decode_json(path.read_bytes(), source=str(path))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return Detected(_by_suffix(path, "not valid JSON"))
    fmt = _json_kind(document)
    if fmt is not None:
        return Detected(fmt, document, decoded=True)
    raise UnknownFormat(
        "a JSON document of no known kind (not FHIR, Tidepool, Nightscout or an array of "
        f"readings); pass --format with one of {', '.join(FORMATS)}",
        source=str(path),
    )


def _json_kind(document: object) -> str | None:
    if fhir.looks_like_fhir(document):
        return "fhir"
    if looks_like_treatments(document):  # before Tidepool: an uploader may add a deviceId
        return "nightscout"
    if tidepool.looks_like_tidepool(document):
        return "tidepool"
    if nightscout.looks_like_nightscout_json(document):
        return "nightscout"
    if isinstance(document, list):
        return "json"
    return None


def read_raw_rows(
    path: Path, fmt: str = "auto", detected: Detected | None = None
) -> tuple[str, ParsedFile]:
    """Parse ``path`` into raw rows; returns the format used and the parsed file. ``detected``:
    what ``detect`` found of this file, whose decoded JSON document is read rather than the
    file again when ``fmt`` is its format."""
    if fmt == "auto":
        detected = detect(path)
        chosen = detected.fmt
    else:
        chosen = fmt
    reader = _READERS.get(chosen)
    if reader is None:
        raise UnknownFormat(
            f"format {chosen!r} is not supported; use one of auto, {', '.join(FORMATS)}",
            source=str(path),
        )
    if detected is not None and detected.decoded and detected.fmt == chosen:
        return chosen, _DOCUMENT_READERS[chosen](detected.document, str(path))
    return chosen, reader(path)

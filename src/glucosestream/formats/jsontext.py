"""JSON from untrusted bytes, for every JSON reader (and the HTTP bodies). PURE.

``decode_json`` is the standard library's decoder, which takes ``NaN`` and ``Infinity`` (some
Nightscout uploaders send them; ingest quarantines those values), with one documented limit:
containers nested at most ``MAX_JSON_DEPTH`` deep. A deeper document is refused with one
``InvalidInput`` (Python's own limit is a ``RecursionError`` at about 1,000 levels, and a value
that deep cannot be written back as text either). No CGM format nests more than about 8 levels.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from glucosestream.errors import InvalidInput

__all__ = ["MAX_JSON_DEPTH", "decode_json", "deeper_than", "field_text", "too_deep"]

MAX_JSON_DEPTH: Final = 64


def decode_json(data: bytes | str, *, source: str, line: int | None = None) -> Any:
    """The JSON value of ``data``. Raises ``json.JSONDecodeError`` or ``UnicodeDecodeError``
    (``bytes`` that are not UTF-8), which the caller words for its format, or ``InvalidInput``
    when containers nest deeper than ``MAX_JSON_DEPTH`` or a number is too long to read."""
    try:
        document = json.loads(data)
    except RecursionError:
        raise too_deep(source, line) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError as err:  # an integer literal longer than Python converts (4,300 digits)
        raise InvalidInput(
            f"a JSON number has more than {sys.get_int_max_str_digits():,} digits; no glucose "
            "export has such a number: fix or remove it",
            source=source,
            line=line,
        ) from err
    if deeper_than(document, MAX_JSON_DEPTH, _brackets(data)):
        raise too_deep(source, line)
    return document


def field_text(value: object) -> str | None:
    """A JSON field's value as text, as every JSON reader puts it in a raw row: null stays null,
    a string is itself, a number or boolean as ``str`` writes it, an object or array as JSON text
    (ingest then quarantines it, naming the value)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        try:
            return json.dumps(value)
        except (RecursionError, ValueError):
            return "(a nested value too deep to write)"
    return str(value)


def too_deep(source: str, line: int | None = None) -> InvalidInput:
    """The error for a document nested deeper than ``MAX_JSON_DEPTH``."""
    return InvalidInput(
        f"JSON nested deeper than {MAX_JSON_DEPTH} levels; no glucose export nests that deep: "
        "send the readings as flat records",
        source=source,
        line=line,
    )


def _brackets(data: bytes | str) -> int:
    """Opening brackets in the text: at least the number of containers in its value."""
    if isinstance(data, str):
        return data.count("{") + data.count("[")
    return data.count(b"{") + data.count(b"[")


def deeper_than(document: Any, limit: int, brackets: int) -> bool:
    """Whether containers nest more than ``limit`` deep. Without a walk when the text's
    ``brackets`` rule it out: fewer than the limit, or an array of as many records (every item
    a container, none inside them); else walked level by level (no recursion)."""
    if brackets <= limit:
        return False
    if (
        isinstance(document, list)
        and brackets <= len(document) + 1
        and set(map(type, document)) <= {dict, list}
    ):
        return False
    level = [document] if isinstance(document, dict | list) else []
    for _ in range(limit):
        deeper: list[Any] = []
        for node in level:
            values = node.values() if isinstance(node, dict) else node
            deeper.extend(v for v in values if isinstance(v, dict | list))
        if not deeper:
            return False
        level = deeper
    return bool(level)
